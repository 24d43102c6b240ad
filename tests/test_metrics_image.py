import numpy as np
import pytest

from facemtl.metrics.image import psnr, ssim

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (40, 48)).astype(np.uint8)


def _noisy(sigma: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, IMAGE.shape)
    return np.clip(IMAGE + noise, 0, 255).astype(np.uint8)


def test_psnr_by_hand():
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[0, 0] = 16  # MSE = 16^2 / 16 = 16 -> 10 log10(255^2 / 16) = 20 log10(63.75) = 36.0896 dB
    assert psnr(a, b) == pytest.approx(36.0896, abs=1e-4)
    # Floats in [0, 1]: MSE 0.01 -> 20 dB.
    assert psnr(np.zeros((3, 3)), np.full((3, 3), 0.1), data_range=1.0) == pytest.approx(20.0)
    assert psnr(IMAGE, IMAGE) == float("inf")


def test_ssim_constant_images_by_hand():
    # sigma = 0 for both, so SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1), C1 = (0.01 * 255)^2 = 6.5025:
    # (22000 + 6.5025) / (10000 + 12100 + 6.5025) = 0.9954764
    a, b = np.full((16, 16), 100.0), np.full((16, 16), 110.0)
    assert ssim(a, b) == pytest.approx(22006.5025 / 22106.5025)
    assert ssim(a, b) == pytest.approx(0.9954764, abs=1e-7)


def _ssim_by_definition(a: np.ndarray, b: np.ndarray, L: float = 255.0) -> float:
    """Direct sum over every full 11x11 window with Gaussian weights exp(-r^2 / (2 * 1.5^2))."""
    x = np.arange(11) - 5
    w = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.5**2))
    w /= w.sum()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_matches_definition():
    a = IMAGE[:14, :13].astype(float)
    b = _noisy(25.0)[:14, :13].astype(float)
    assert ssim(a, b) == pytest.approx(_ssim_by_definition(a, b), abs=1e-10)


def test_ssim_invariants():
    assert ssim(IMAGE, IMAGE) == pytest.approx(1.0)
    b = _noisy(20.0)
    assert ssim(IMAGE, b) == pytest.approx(ssim(b, IMAGE), abs=1e-12)
    scores = [ssim(IMAGE, _noisy(s)) for s in (5.0, 20.0, 60.0)]
    assert 1.0 > scores[0] > scores[1] > scores[2]
    # Colour: the mean of the per-channel SSIMs.
    colour_a = np.stack([IMAGE] * 3, axis=-1)
    colour_b = np.stack([_noisy(5.0), _noisy(20.0), _noisy(60.0)], axis=-1)
    assert ssim(colour_a, colour_b) == pytest.approx(np.mean(scores))
    # Same images in [0, 1] with data_range 1 give the same SSIM.
    assert ssim(IMAGE / 255.0, b / 255.0, data_range=1.0) == pytest.approx(ssim(IMAGE, b))


def test_bad_images_raise():
    with pytest.raises(ValueError, match="same shape"):
        psnr(IMAGE, IMAGE[:-1])
    with pytest.raises(ValueError, match="empty"):
        psnr(np.zeros((0, 4)), np.zeros((0, 4)))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(IMAGE[:10], IMAGE[:10])

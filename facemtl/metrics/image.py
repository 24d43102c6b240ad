"""Image similarity (numpy + OpenCV): PSNR and SSIM of one image pair.

Images are (H, W) grey or (H, W, C) arrays of any numeric dtype, compared as float64 in
the units given by ``data_range`` (255 for uint8, 1.0 for images in [0, 1]). Mismatched or
empty images raise ``ValueError``.
"""

from __future__ import annotations

import cv2
import numpy as np

# Wang, Bovik, Sheikh & Simoncelli 2004, "Image quality assessment: from error visibility to
# structural similarity": 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(a: np.ndarray, b: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise ValueError(f"{what}: expected two images of the same shape (H, W) or (H, W, C), "
                         f"got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError(f"{what}: empty image {a.shape}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range^2 / MSE)``, MSE over all pixels
    and channels. ``inf`` for identical images."""
    a, b = _check_pair(a, b, "psnr")
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Mean structural similarity (Wang et al. 2004), in [-1, 1]; 1 for identical images.

    Local means, variances and covariance are Gaussian-weighted (11x11, sigma 1.5, population
    statistics, no sample-size correction) and only windows that lie fully inside the image
    are averaged (Matlab ``filter2(..., 'valid')``, a 5-pixel border is excluded). Colour
    images give the mean of the per-channel SSIMs. No downsampling is applied (unlike the
    2009 ``ssim.m`` for large images). Matches ``skimage.metrics.ssim`` with
    ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``.
    Images must be at least 11x11.
    """
    a, b = _check_pair(a, b, "ssim")
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"ssim: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {a.shape[:2]}")
    if a.ndim == 3:
        return float(np.mean([ssim(a[..., c], b[..., c], data_range) for c in range(a.shape[2])]))
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    r = SSIM_WINDOW // 2

    def blur(x: np.ndarray) -> np.ndarray:
        # Crop the border so only full windows remain ('valid'); the border mode is then irrelevant.
        x = cv2.GaussianBlur(np.ascontiguousarray(x), (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, sigmaY=SSIM_SIGMA)
        return x[r:-r, r:-r]

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())

"""Low-resolution face crops (numpy + OpenCV): the inputs of super-resolution training and of its study.

:func:`degrade` makes a random low-resolution version of a high-resolution crop the way real
small faces look (Hopenet §3.5's low-resolution augmentation, widened): optional blur, then
downsampling by nearest-neighbour, bilinear or area sampling, then optional sensor noise and
JPEG compression. :func:`downsample` is the one clean downsampling of the study.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

RESAMPLING = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}


def downsample(crop: np.ndarray, size: int) -> np.ndarray:
    """``crop`` shrunk to ``size`` x ``size`` by area averaging (what a camera's pixels do)."""
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


@dataclass
class Degradation:
    """Probabilities and ranges of :func:`degrade`.

    ``resampling``: weight of each method of :data:`RESAMPLING`; ``blur``: probability of a
    Gaussian blur of std ``blur_sigma`` low-resolution pixels before downsampling; ``noise``:
    probability of Gaussian noise of std up to ``noise_std`` grey levels; ``jpeg``: probability of
    JPEG compression at a quality in ``jpeg_quality``.
    """

    resampling: dict[str, float] | None = None
    blur: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    noise: float = 0.3
    noise_std: float = 6.0
    jpeg: float = 0.3
    jpeg_quality: tuple[int, int] = (40, 95)

    def methods(self) -> tuple[list[str], np.ndarray]:
        weights = self.resampling or {"area": 2.0, "bilinear": 1.0, "nearest": 1.0}
        unknown = set(weights) - set(RESAMPLING)
        if unknown:
            raise ValueError(f"unknown resampling {sorted(unknown)}; known: {', '.join(RESAMPLING)}")
        p = np.array(list(weights.values()), dtype=np.float64)
        return list(weights), p / p.sum()


def degrade(crop: np.ndarray, size: int, rng: np.random.Generator, d: Degradation | None = None) -> np.ndarray:
    """A random ``size`` x ``size`` low-resolution version of the uint8 BGR ``crop`` (see the module)."""
    d = d or Degradation()
    factor = crop.shape[0] / size
    img = crop
    if rng.random() < d.blur:
        # The sigma is in low-resolution pixels: the same softness whatever the factor.
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(*d.blur_sigma) * factor)
    names, p = d.methods()
    img = cv2.resize(img, (size, size), interpolation=RESAMPLING[names[rng.choice(len(names), p=p)]])
    if rng.random() < d.noise:
        noisy = img.astype(np.float32) + rng.normal(0, rng.uniform(0, d.noise_std), img.shape)
        img = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    if rng.random() < d.jpeg:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(*d.jpeg_quality))])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else img
    return img

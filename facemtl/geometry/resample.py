"""Affine resampling that does not alias when it shrinks (numpy + OpenCV).

Conventions: ``m`` is a 2x3 matrix mapping source pixel coordinates to output pixel coordinates,
pixel centres at integers (OpenCV's ``warpAffine``), isotropic or not; ``size`` is (width, height).
"""

from __future__ import annotations

import cv2
import numpy as np

# A pixel of an image halved by 2x2 averaging -> the full image's pixels (centres at 2q + 0.5).
_HALVED_TO_FULL = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])


def shrink_warp(image: np.ndarray, m: np.ndarray, size: tuple[int, int], interpolation: int = cv2.INTER_LINEAR,
                border: int = cv2.BORDER_CONSTANT) -> np.ndarray:
    """``cv2.warpAffine(image, m, size)``, but while ``m`` shrinks by more than 2x the image is first
    halved by 2x2 averaging (OpenCV's fast ``INTER_AREA`` path, a tenth of the time of an arbitrary
    factor), so a bilinear warp never skips pixels. Outside the image: 0 (``BORDER_CONSTANT``) or
    ``border``."""
    region, m = image, np.asarray(m, dtype=np.float64)
    while np.hypot(m[0, 0], m[1, 0]) < 0.5 and min(region.shape[:2]) >= 2:
        region = cv2.resize(region, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        m = np.vstack([m, [0.0, 0.0, 1.0]])[:2] @ _HALVED_TO_FULL
    return cv2.warpAffine(region, m, size, flags=interpolation, borderMode=border, borderValue=0)

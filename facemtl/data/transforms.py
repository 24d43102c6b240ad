"""Face crops and augmentations, in numpy + OpenCV (shared by training, evaluation and inference).

Coordinates are 0-based pixel indices (pixel ``i`` covers ``[i - 0.5, i + 0.5]``). A face crop is
the square of side ``crop_scale * max(w, h)`` centred on the box ``[x1, y1, x2, y2]``, resampled
to ``size x size``: its edges map to the crop's edges, so a point ``p`` goes to
``s * (p - c) + (size - 1) / 2`` with ``s = size / side``. Normalised crop coordinates put the
crop's edges at 0 and 1: ``(p_crop + 0.5) / size`` (see ``docs/model-format.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# iBUG-68 index of each point's mirror image under a horizontal flip.
FLIP_68 = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 16, -1))  # eyebrows
    + [27, 28, 29, 30]  # nose bridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46]  # right eye <- left eye
    + [39, 38, 37, 36, 41, 40]  # left eye <- right eye
    + [54, 53, 52, 51, 50, 49, 48]  # outer lips, top
    + [59, 58, 57, 56, 55]  # outer lips, bottom
    + [64, 63, 62, 61, 60]  # inner lips, top
    + [67, 66, 65]  # inner lips, bottom
)


def crop_matrix(box: np.ndarray, crop_scale: float, size: int) -> np.ndarray:
    """2x3 affine matrix from image pixels to crop pixels for the square crop around ``box``.

    ``box``: (..., 4) ``[x1, y1, x2, y2]``. Returns (..., 2, 3).
    """
    box = np.asarray(box, dtype=np.float64)
    cx = (box[..., 0] + box[..., 2]) / 2
    cy = (box[..., 1] + box[..., 3]) / 2
    side = crop_scale * np.maximum(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1])
    s = size / np.maximum(side, 1e-6)
    m = np.zeros(box.shape[:-1] + (2, 3))
    m[..., 0, 0] = s
    m[..., 1, 1] = s
    m[..., 0, 2] = (size - 1) / 2 - s * cx
    m[..., 1, 2] = (size - 1) / 2 - s * cy
    return m


def apply_affine(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Map (..., K, 2) points by (..., 2, 3) affine matrices (NaN points stay NaN)."""
    return points @ np.swapaxes(m[..., :2], -1, -2) + m[..., None, :, 2]


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of (..., 2, 3) affine matrices."""
    a = np.linalg.inv(m[..., :2])
    return np.concatenate([a, -(a @ m[..., :, 2:])], axis=-1)


def crop_face(image: np.ndarray, box: np.ndarray, crop_scale: float, size: int,
              interpolation: int = cv2.INTER_LINEAR) -> tuple[np.ndarray, np.ndarray]:
    """Cut the square face crop around ``box``; returns ``(crop (size, size, C), matrix (2, 3))``.

    The matrix maps image pixels to crop pixels (:func:`crop_matrix`). Pixels outside the image
    are 0. Shrinking by more than 2x first blurs with INTER_AREA-like pre-scaling so small crops
    do not alias. Only the part of the image the crop covers (plus a 2-pixel margin for the
    interpolation) is read: pre-shrinking a whole 12-megapixel photo for each face would dominate
    the run time.
    """
    m = crop_matrix(box, crop_scale, size)
    if not np.all(np.isfinite(m)):
        raise ValueError(f"crop_face: box {np.asarray(box).tolist()} is not finite")
    h, w = image.shape[:2]
    half = crop_scale * max(box[2] - box[0], box[3] - box[1]) / 2 + 2
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0 = int(np.clip(np.floor(cx - half), 0, w - 1)), int(np.clip(np.floor(cy - half), 0, h - 1))
    x1, y1 = int(np.clip(np.ceil(cx + half) + 1, x0 + 1, w)), int(np.clip(np.ceil(cy + half) + 1, y0 + 1, h))
    region = image[y0:y1, x0:x1]
    m_region = m.copy()
    m_region[:, 2] += m[:, :2] @ np.array([x0, y0], dtype=np.float64)  # region pixels -> crop pixels
    scale = m[0, 0]
    if scale < 0.5:
        # Pre-shrink the region: bilinear warping alone would alias at strong downscaling.
        rh, rw = region.shape[:2]
        sw, sh = max(1, round(rw * scale * 2)), max(1, round(rh * scale * 2))
        region = cv2.resize(region, (sw, sh), interpolation=cv2.INTER_AREA)
        fx, fy = sw / rw, sh / rh
        pre = np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1]])
        m_region = m_region @ np.linalg.inv(pre)
    crop = cv2.warpAffine(region, m_region, (size, size), flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crop, m


# Landmark-box side / image side of the tight face crops of expression datasets (FER2013, CK+48:
# brows to chin, nearly cheek to cheek), estimated by eye on the shared images.
TIGHT_FACE_FRACTION = 0.9


def tight_crop_box(width: int, height: int) -> np.ndarray:
    """The face box of an image that is itself a tight face crop (FER2013, CK+48).

    Cropping around it at a model's ``crop_scale`` shows the face at the same size as a
    landmark-box crop of a photo does (the rest is zero padding).
    """
    half = TIGHT_FACE_FRACTION * min(width, height) / 2
    cx, cy = (width - 1) / 2, (height - 1) / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """Tight box ``[x1, y1, x2, y2]`` of (..., K, 2) landmarks, ignoring NaN points."""
    return np.concatenate([np.nanmin(landmarks, axis=-2), np.nanmax(landmarks, axis=-2)], axis=-1)


def flip_pose(pose: np.ndarray) -> np.ndarray:
    """Pose ``[yaw, pitch, roll]`` of the horizontally mirrored face: yaw and roll change sign."""
    return np.asarray(pose) * np.array([-1.0, 1.0, -1.0])


def flip_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    """Mirror (..., 68, 2) landmarks of an image ``width`` pixels wide and re-index them."""
    out = landmarks[..., FLIP_68, :].copy()
    out[..., 0] = width - 1 - out[..., 0]
    return out


@dataclass
class Augment:
    """Random augmentation of a face crop (Hopenet §3.5 and the usual photometric ones).

    ``box_jitter``: relative shift/scale noise of the box before cropping (Hopenet's random
    crop margins); ``flip``: probability of a horizontal flip; ``low_res``: probability of
    down/up-sampling by a factor in ``low_res_range``; ``blur``: probability of a Gaussian blur;
    ``color``: strength of brightness/contrast/saturation jitter.
    """

    box_jitter: float = 0.1
    flip: float = 0.5
    low_res: float = 0.3
    low_res_range: tuple[float, float] = (1.0, 15.0)
    blur: float = 0.1
    color: float = 0.3

    def jitter_box(self, box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        w, h = box[2] - box[0], box[3] - box[1]
        side = max(w, h)
        scale = 1 + rng.uniform(-self.box_jitter, self.box_jitter)
        shift = rng.uniform(-self.box_jitter, self.box_jitter, 2) * side
        c = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]) + shift
        half = np.array([w, h]) * scale / 2
        return np.concatenate([c - half, c + half])

    def photometric(self, crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Low resolution, blur and colour jitter on a uint8 BGR crop (geometry unchanged)."""
        size = crop.shape[0]
        if rng.random() < self.low_res:
            factor = rng.uniform(*self.low_res_range)
            small = max(2, int(round(size / factor)))
            crop = cv2.resize(cv2.resize(crop, (small, small), interpolation=cv2.INTER_NEAREST),
                              (size, size), interpolation=cv2.INTER_NEAREST)
        if rng.random() < self.blur:
            crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(0.5, 2.0))
        if self.color > 0:
            c = self.color
            img = crop.astype(np.float32)
            grey = img.mean(axis=2, keepdims=True)
            img = grey + (img - grey) * (1 + rng.uniform(-c, c))  # saturation
            img = (img - img.mean()) * (1 + rng.uniform(-c, c)) + img.mean()  # contrast
            img = img * (1 + rng.uniform(-c, c)) + rng.uniform(-20, 20) * c  # brightness
            crop = np.clip(img, 0, 255).astype(np.uint8)
        if crop.ndim == 2:
            crop = crop[..., None]
        return crop

"""Which box a sample's face is cropped around, flips and augmentations, in numpy + OpenCV.

The crop itself and its coordinates are the model contract (:mod:`facemtl.contract`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facemtl.contract import FLIP_68, landmark_box
from facemtl.data.sample import Sample

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


def face_box(sample: Sample, image: np.ndarray) -> np.ndarray:
    """The box every model input of a labelled sample is cropped around (training and evaluation):
    the tight landmark box, else the sample's box, else (expression datasets of tight face
    crops) :func:`tight_crop_box` of the whole image."""
    if sample.landmarks is not None and np.isfinite(sample.landmarks).any():
        return landmark_box(sample.landmarks)
    if sample.box is not None:
        return np.asarray(sample.box, dtype=np.float64)
    return tight_crop_box(image.shape[1], image.shape[0])


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
    ``color``: strength of brightness/contrast/saturation jitter; ``rotate``: half of the time,
    turn the crop in the image plane by up to this many degrees (:func:`rotate_in_plane`; the
    profiled 300-W photos barely vary in roll).
    """

    box_jitter: float = 0.1
    flip: float = 0.5
    low_res: float = 0.3
    low_res_range: tuple[float, float] = (1.0, 15.0)
    blur: float = 0.1
    color: float = 0.3
    rotate: float = 0.0

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


def rotate_in_plane(crop: np.ndarray, degrees: float, landmarks: np.ndarray | None = None,
                    pose: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Turn a square crop clockwise on screen by ``degrees`` about its centre, with its labels.

    ``landmarks`` (68, 2) crop pixels (NaN stays NaN); ``pose`` ``[yaw, pitch, roll]`` degrees.
    A turn of the image about the crop centre is a turn of the head about the camera's optical
    axis (exact for a face at the image centre, weak perspective elsewhere): ``R' = rot_z(a) R``
    in OpenCV camera axes, where ``rot_z`` by a positive angle takes x (right) toward y (down),
    i.e. clockwise on screen, the sign of positive roll. The corners that come into view are 0.
    """
    from facemtl.geometry.rotations import euler_to_matrix, matrix_to_euler, rot_z

    size = crop.shape[0]
    c = (size - 1) / 2
    m = cv2.getRotationMatrix2D((c, c), -degrees, 1.0)  # OpenCV's positive angle is anticlockwise
    out = cv2.warpAffine(crop, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    if out.ndim == 2:
        out = out[..., None]
    if landmarks is not None:
        landmarks = landmarks @ m[:, :2].T + m[:, 2]
    if pose is not None:
        pose = matrix_to_euler(rot_z(np.deg2rad(degrees)) @ euler_to_matrix(pose))
    return out, landmarks, pose

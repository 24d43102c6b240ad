"""The model contract: what a facemtl model takes in and gives out (``docs/model-format.md``).

Every encoder and decoder of model inputs and outputs calls this module: training examples,
evaluation, inference, export, the CSV writers. Changing the crop or an output happens here.

Coordinates are 0-based pixel indices (pixel ``i`` covers ``[i - 0.5, i + 0.5]``). A face crop is
the square of side ``crop_scale * max(w, h)`` centred on the box ``[x1, y1, x2, y2]``, resampled
to ``size x size``: its edges map to the crop's edges, so a point ``p`` goes to
``s * (p - c) + (size - 1) / 2`` with ``s = size / side``. The model's landmarks are normalised
crop coordinates, which put the crop's edges at 0 and 1: ``(p_crop + 0.5) / size``
(:func:`landmarks_to_crop` and its inverse :func:`landmarks_to_image`).
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from facemtl.geometry.resample import shrink_warp
from facemtl.geometry.rotations import euler_to_matrix, matrix_to_euler, mirror_rotation, nearest_rotation

N_LANDMARKS = 68  # iBUG-68 points
# AffectNet's order of the seven basic expressions; readers map their own orders onto it.
EXPRESSIONS: tuple[str, ...] = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry")
N_EXPRESSIONS = len(EXPRESSIONS)

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

# The model's input: float32 (N, 3, S, S) BGR crops, 0..255.
INPUT_NAME = "image"
# The outputs, in the order export writes them, and the shape of one row of each.
OUTPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "pose": (3,),  # yaw, pitch, roll in degrees
    "pose_std": (3,),  # per-angle uncertainty in degrees
    "rotation": (3, 3),  # head-to-camera rotation matrix
    "landmarks": (N_LANDMARKS, 2),  # normalised crop coordinates
    "visibility": (N_LANDMARKS,),  # probability that each point is visible
    "expression": (N_EXPRESSIONS,),  # probabilities over EXPRESSIONS
}
OUTPUTS: tuple[str, ...] = tuple(OUTPUT_SHAPES)
# An output a trained model's file may carry besides OUTPUTS (not written by export): the
# probability (N,) that the crop holds a face, a probe on the network's pooled features added to
# the graph by facemtl.tools.presence. Mirroring does not change it.
PRESENCE = "presence"
# The one output of a super-resolution generator (its input is INPUT_NAME, any size): (N, 3, s·h, s·w) BGR.
SR_OUTPUT = "sr"
# A face detector's outputs (facemtl.models.mos; input INPUT_NAME, a letterboxed canvas), A anchors:
# scores (N, A), box_deltas (N, A, 4), point_deltas (N, A, 5, 2), rot6d (N, A, 6). Boxes, points and
# the 6D pose are decoded in numpy (facemtl.geometry.anchors, rotations.sixd_to_matrix).
DETECTOR_OUTPUTS: tuple[str, ...] = ("scores", "box_deltas", "point_deltas", "rot6d")

# The per-face landmark columns of the CSV files of ``facemtl predict`` and ``facemtl video``.
LANDMARK_COLUMNS: list[str] = ([f"x_{i}" for i in range(N_LANDMARKS)] + [f"y_{i}" for i in range(N_LANDMARKS)]
                               + [f"v_{i}" for i in range(N_LANDMARKS)])


def expression_columns(expressions: tuple[str, ...]) -> list[str]:
    """The CSV columns of the expression probabilities, one per class in the model's order."""
    return [f"p_{n}" for n in expressions]


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
    are 0. Shrinking by more than 2x first halves the region by 2x2 averaging (as often as needed)
    so small crops do not alias. Only the part of the image the crop covers (plus a 2-pixel margin for the
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
    return shrink_warp(region, m_region, (size, size), interpolation), m


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    """Tight box ``[x1, y1, x2, y2]`` of (..., K, 2) landmarks, ignoring NaN points.

    The box a model is trained to see its face in (the crop is cut around it)."""
    return np.concatenate([np.nanmin(landmarks, axis=-2), np.nanmax(landmarks, axis=-2)], axis=-1)


def crop_pixels_to_normalised(points: np.ndarray, size: int) -> np.ndarray:
    """(..., K, 2) crop pixels -> normalised crop coordinates ``(p + 0.5) / size``."""
    return (points + 0.5) / size


def landmarks_to_crop(points: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """(..., K, 2) image pixels -> normalised crop coordinates of the crop of ``matrix`` (..., 2, 3)."""
    return crop_pixels_to_normalised(apply_affine(points, matrix), size)


def landmarks_to_image(normalised: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """(..., K, 2) normalised crop coordinates -> image pixels through the crop matrices (..., 2, 3).

    Computed in the dtype of ``normalised`` up to the matrix product (float64)."""
    crop_pixels = np.asarray(normalised) * size - 0.5
    return apply_affine(crop_pixels, invert_affine(matrix))


def mirror_outputs(out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs of the horizontally mirrored crops -> the same faces in the unmirrored crops.

    Landmarks are re-indexed by :data:`FLIP_68` with ``x -> 1 - x`` (normalised coordinates),
    visibility re-indexed, the rotation mirrored (:func:`facemtl.geometry.rotations.mirror_rotation`),
    yaw and roll negated; ``pose_std``, ``expression`` and ``presence`` do not change."""
    out = dict(out)
    if "landmarks" in out:
        lm = out["landmarks"][:, FLIP_68].copy()
        lm[..., 0] = 1 - lm[..., 0]
        out["landmarks"] = lm
    if "visibility" in out:
        out["visibility"] = out["visibility"][:, FLIP_68]
    if "rotation" in out:
        out["rotation"] = mirror_rotation(out["rotation"]).astype(out["rotation"].dtype)
    if "pose" in out:
        out["pose"] = out["pose"] * np.array([-1, 1, -1], dtype=out["pose"].dtype)
    return out


Predict = Callable[[np.ndarray], dict[str, np.ndarray]]


# Not a model output: added by flip_averaged where the model has landmarks.
FLIP_GAP = "flip_gap"


def flip_averaged(predict: Predict) -> Predict:
    """Test-time flip averaging: ``predict`` on the crops and on their mirror images in one call,
    the mirrored outputs mapped back (:func:`mirror_outputs`) and averaged (rotations: the rotation
    nearest to the mean matrix). Twice the model's work a face, for lower error (figures in
    docs/MODEL_CARD.md, "Flip averaging").

    With landmarks the result also holds :data:`FLIP_GAP` (N,): the mean distance between the two
    readings' landmarks in crop sides. A face and its mirror image are read alike; a logo or a
    sleeve is not (docs/detector.md, "The plausibility filter")."""
    def run(crops: np.ndarray) -> dict[str, np.ndarray]:
        n = len(crops)
        both = predict(np.concatenate([crops, crops[:, :, ::-1]]))
        mirrored = mirror_outputs({k: v[n:] for k, v in both.items()})
        out = {k: (v[:n] + mirrored[k]) / 2 for k, v in both.items()}
        if "landmarks" in out:
            out[FLIP_GAP] = np.linalg.norm(both["landmarks"][:n] - mirrored["landmarks"], axis=-1).mean(axis=-1)
        if "rotation" in out:
            out["rotation"] = nearest_rotation(out["rotation"]).astype(both["rotation"].dtype)
        return out
    return run


def fuse_pose_heads(out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One head pose from a model with both pose heads (Hopenet bins -> ``pose``, 6D -> ``rotation``):
    the rotation nearest to the mean of their two matrices, and its Euler angles as ``pose``
    (``pose_std`` stays the bins' spread). On the held-out turned 300-W faces and renders (model
    9b0b6a15, flip-averaged) the bins alone read 2.40° / 10.40°, the 6D head 2.29° / 11.13°, the
    fusion 2.32° / 10.27° (docs/MODEL_CARD.md, "Two pose heads"). Other outputs pass through."""
    if "pose" not in out or "rotation" not in out:
        return out
    R = nearest_rotation((out["rotation"] + euler_to_matrix(out["pose"])) / 2)
    return {**out, "rotation": R.astype(out["rotation"].dtype), "pose": matrix_to_euler(R).astype(out["pose"].dtype)}


def model_reading(predict: Predict, flip: bool = True) -> Predict:
    """``predict`` as ``FaceAnalyzer`` and ``facemtl eval`` run a model: flip-averaged with ``flip``
    (:func:`flip_averaged`), its two pose heads fused (:func:`fuse_pose_heads`)."""
    averaged = flip_averaged(predict) if flip else predict
    return lambda crops: fuse_pose_heads(averaged(crops))

"""Exact labels of a rendered face: pose, 68 landmarks (2D, 3D, visibility), boxes, expression.

Frames and units
    Head frame and camera frame as in :mod:`facemtl.geometry.rotations` (OpenCV camera: x right,
    y down, z forward; millimetres). A head point ``p`` is at ``R @ p + t`` in the camera, and a
    camera point ``X`` is at pixel ``(K @ X)[:2] / X[2]`` with pixel centres at integer
    coordinates (0-based, as :mod:`facemtl.synth.raster` samples them).

``Pose_Para`` (300W-LP / AFLW2000 layout, 1x7)
    ``[pitch, yaw, roll]`` in radians with ``R = euler_to_matrix([yaw, pitch, roll])``, then
    ``tx, ty, tz`` = ``t`` (the head-frame origin in the camera, mm) and ``scale`` =
    ``f / tz`` (pixels per mm at the head's depth: the weak-perspective scale).

Expression class (rule on the ICT / ARKit blendshape weights, FACS-based EMFACS prototypes)
    Each class gets a score, the mean of the two sides of each action unit it needs, and
    the minimum over the action units it needs (all must be present):

    * happy: AU12 lip corner puller (``mouthSmile``)
    * sad: AU1 inner brow raiser (``browInnerUp``) and AU15 lip corner depressor (``mouthFrown``)
    * surprise: AU1+2 brow raisers (mean of ``browInnerUp``, ``browOuterUp``) and AU26/27
      jaw drop (``jawOpen``)
    * fear: AU1 (``browInnerUp``), AU5 upper lid raiser (``eyeWide``) and AU20 lip stretcher
      (``mouthStretch``)
    * disgust: AU9 nose wrinkler (``noseSneer``)
    * angry: AU4 brow lowerer (``browDown``) and either AU7 lid tightener (``eyeSquint``) or
      AU24 lip pressor (``mouthPress``), whichever is larger

    The class is the highest-scoring one if its score is at least :data:`EXPRESSION_THRESHOLD`,
    else neutral; ties go to the earlier class of :data:`facemtl.contract.EXPRESSIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Optional, Sequence

import numpy as np

from facemtl.contract import EXPRESSIONS
from facemtl.data.sample import Sample
from facemtl.geometry.rotations import ypr_to_pose_para

EXPRESSION_THRESHOLD = 0.3

# class -> list of action units; an action unit is a tuple of alternatives, each a list of
# blendshape names whose weights are averaged (the two sides).
_PROTOTYPES: dict[str, list[tuple[tuple[str, ...], ...]]] = {
    "happy": [(("mouthSmile_L", "mouthSmile_R"),)],
    "sad": [(("browInnerUp_L", "browInnerUp_R"),), (("mouthFrown_L", "mouthFrown_R"),)],
    "surprise": [(("browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R"),), (("jawOpen",),)],
    "fear": [(("browInnerUp_L", "browInnerUp_R"),), (("eyeWide_L", "eyeWide_R"),),
             (("mouthStretch_L", "mouthStretch_R"),)],
    "disgust": [(("noseSneer_L", "noseSneer_R"),)],
    "angry": [(("browDown_L", "browDown_R"),), (("eyeSquint_L", "eyeSquint_R"), ("mouthPress_L", "mouthPress_R"))],
}

# Blendshapes that express each class (the union of its prototype), for samplers.
EXPRESSION_SHAPES: dict[str, tuple[str, ...]] = {
    name: tuple(dict.fromkeys(s for unit in units for group in unit for s in group))
    for name, units in _PROTOTYPES.items()
}


@lru_cache(maxsize=4)
def _prototype_index(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened rule: for each (class, unit, alternative) group, the weight columns to average.

    Returns ``columns`` (G, 2) (a group has 1, 2 or 4 shapes; shorter groups repeat a column so
    that the mean is unchanged), ``group_unit`` (G,) and ``unit_class`` (U,) indices.
    """
    index = {n: i for i, n in enumerate(names)}
    columns, group_unit, unit_class = [], [], []
    for name, units in _PROTOTYPES.items():
        for alternatives in units:
            for group in alternatives:
                cols = [index[s] for s in group]
                columns.append((cols * (4 // len(cols)))[:4])
                group_unit.append(len(unit_class))
            unit_class.append(EXPRESSIONS.index(name))
    return np.array(columns), np.array(group_unit), np.array(unit_class)


def expression_scores(weights: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Score of each class of ``EXPRESSIONS`` (neutral scores 0), (..., 53) -> (..., 7).

    See the module docstring for the rule.
    """
    w = np.asarray(weights, dtype=np.float64)
    columns, group_unit, unit_class = _prototype_index(tuple(names))
    group = w[..., columns].mean(-1)  # (..., G)
    unit = np.full(w.shape[:-1] + (len(unit_class),), -np.inf)
    for g, u in enumerate(group_unit):  # a unit takes its best alternative
        unit[..., u] = np.maximum(unit[..., u], group[..., g])
    scores = np.full(w.shape[:-1] + (len(EXPRESSIONS),), np.inf)
    for u, c in enumerate(unit_class):  # a class needs all its units
        scores[..., c] = np.minimum(scores[..., c], unit[..., u])
    scores[..., 0] = 0.0
    return scores


def expression_class(weights: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Index into ``EXPRESSIONS`` derived from blendshape weights (..., 53) -> (...) int."""
    scores = expression_scores(weights, names)
    best = np.argmax(scores, axis=-1)  # first maximum: ties go to the earlier class
    return np.where(np.take_along_axis(scores, best[..., None], -1)[..., 0] >= EXPRESSION_THRESHOLD, best, 0)


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixels (..., 2) of camera-frame points (..., 3) with intrinsics ``K`` (3, 3)."""
    p = np.asarray(points, dtype=np.float64) @ np.asarray(K, dtype=np.float64).T
    return p[..., :2] / p[..., 2:3]


def landmark_visibility(
    points_2d: np.ndarray,
    depth_mm: np.ndarray,
    zbuffer: np.ndarray,
    tolerance_mm: float,
    occluded: Optional[np.ndarray] = None,
) -> np.ndarray:
    """1 where a point is seen, 0 where hidden, (N,) float from (N, 2) pixels and (N,) depths.

    A point is visible when it is inside the image, not under ``occluded`` (H, W bool, e.g.
    drawn occluders) at its nearest pixel, and not behind the surface: its depth is at most
    ``tolerance_mm`` behind the farthest z-buffer depth of the 3x3 pixels around it (the
    farthest, so that points on a silhouette, where the neighbouring pixels see past the
    surface, stay visible). ``zbuffer`` (H, W) holds camera depths, ``inf`` where empty.
    """
    h, w = zbuffer.shape
    xy = np.rint(np.asarray(points_2d, dtype=np.float64)).astype(np.int64)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    x = np.clip(xy[:, 0], 0, w - 1)
    y = np.clip(xy[:, 1], 0, h - 1)
    ny = np.clip(y[:, None] + _NEIGHBOURS[:, 1], 0, h - 1)
    nx = np.clip(x[:, None] + _NEIGHBOURS[:, 0], 0, w - 1)
    far = zbuffer[ny, nx].max(1)
    visible = inside & (np.asarray(depth_mm) <= far + tolerance_mm)
    if occluded is not None:
        visible &= ~occluded[y, x]
    return visible.astype(np.float64)


_NEIGHBOURS = np.array([(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])


def box_of(points_2d: np.ndarray) -> np.ndarray:
    """Tight box ``[x1, y1, x2, y2]`` of (N, 2) points (not clipped to the image)."""
    p = np.asarray(points_2d, dtype=np.float64)
    return np.concatenate([p.min(0), p.max(0)])


@dataclass
class FaceLabels:
    """All labels of one rendered face.

    ``pose`` (3,) yaw, pitch, roll degrees as sampled (|yaw| may exceed 90; always
    ``euler_to_matrix(pose) == rotation``); ``rotation`` (3, 3) head to camera; ``translation``
    (3,) mm; ``camera`` (3, 3) intrinsics ``K`` in pixels; ``landmarks`` (68, 2) 0-based pixels;
    ``landmarks_3d`` (68, 3) camera frame mm; ``visibility`` (68,) 1/0; ``box`` (4,) tight box
    of the 68 landmarks (how the real-data readers box faces); ``face_box`` (4,) box of the
    face surface (forehead to chin, cheek to cheek) for detection; ``expr_weights`` (53,)
    ICT blendshape weights; ``expr_class`` index into ``EXPRESSIONS``; ``identity`` id of the
    sampled person (same id = same shape and appearance; -1 for faces wearing a photo texture).
    """

    pose: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    camera: np.ndarray
    landmarks: np.ndarray
    landmarks_3d: np.ndarray
    visibility: np.ndarray
    box: np.ndarray
    face_box: np.ndarray
    expr_weights: np.ndarray
    expr_class: int
    identity: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def pose_para(self) -> np.ndarray:
        """``Pose_Para`` (7,): pitch, yaw, roll (rad), tx, ty, tz (mm), scale = f / tz (px/mm)."""
        t = np.asarray(self.translation, dtype=np.float64)
        return np.concatenate([ypr_to_pose_para(self.pose), t, [self.camera[0, 0] / t[2]]])

    def to_sample(self, image: Optional[np.ndarray] = None, image_path: Optional[str] = None) -> Sample:
        """The face as a :class:`facemtl.data.sample.Sample` (``source="synth"``)."""
        return Sample(
            source="synth",
            image=image,
            image_path=image_path,
            box=self.box.copy(),
            pose=self.pose.copy(),
            landmarks=self.landmarks.copy(),
            landmarks_3d=self.landmarks_3d.copy(),
            visibility=self.visibility.copy(),
            expression=int(self.expr_class),
            meta={"pose_para": self.pose_para, "expr_weights": self.expr_weights.copy(),
                  "identity": int(self.identity), "camera": self.camera.copy(),
                  "face_box": self.face_box.copy(), **self.meta},
        )

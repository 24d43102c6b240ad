"""Typed results of :class:`facemtl.infer.FaceAnalyzer`, and their JSON form.

Pixel coordinates are 0-based, x right, y down, in the analysed image. Pose angles are degrees
in the 300W-LP ``Pose_Para`` convention (:mod:`facemtl.geometry.rotations`); ``matrix`` maps
head coordinates to OpenCV camera coordinates. A field the model has no head for is ``None``
(``null`` in JSON).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np


def _floats(a: Optional[np.ndarray]) -> Any:
    """Nested lists of Python floats for JSON, to 1e-4 (pixels, degrees, probabilities); NaN
    becomes ``None``: JSON has no NaN."""
    if a is None:
        return None
    a = np.round(np.asarray(a, dtype=np.float64), 4)
    return np.where(np.isfinite(a), a, None).tolist()


@dataclass
class Pose:
    """Head pose: rotation ``matrix`` (3, 3), Euler angles in degrees, per-angle ``uncertainty``."""

    matrix: np.ndarray
    yaw: float
    pitch: float
    roll: float
    uncertainty: Optional[np.ndarray] = None  # (3,) standard deviation of yaw, pitch, roll (degrees)

    @property
    def ypr(self) -> np.ndarray:
        """``[yaw, pitch, roll]`` in degrees."""
        return np.array([self.yaw, self.pitch, self.roll])

    def to(self, convention: str) -> np.ndarray:
        """The rotation in another tool's convention: 'opencv', 'mediapipe', 'openface', '6drepnet',
        'img2pose' or 'biwi' (see :mod:`facemtl.geometry.conventions`)."""
        from facemtl.geometry.conventions import convert

        return convert(self.matrix, convention)

    def to_dict(self) -> dict[str, Any]:
        yaw, pitch, roll = _floats(self.ypr)
        return {"yaw": yaw, "pitch": pitch, "roll": roll, "matrix": _floats(self.matrix),
                "uncertainty": _floats(self.uncertainty)}


@dataclass
class Expression:
    """Most probable expression ``label`` and ``probs``, one probability per name in ``names``."""

    label: str
    probs: np.ndarray  # (K,)
    names: tuple[str, ...]

    @property
    def probability(self) -> float:
        """The probability of ``label``."""
        return float(self.probs[self.names.index(self.label)])

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "probs": {n: round(float(p), 4) for n, p in zip(self.names, self.probs)}}


@dataclass
class Face:
    """One analysed face."""

    box: np.ndarray  # (4,) x1, y1, x2, y2
    score: float  # detector confidence in [0, 1]; 1 for boxes given by the caller
    landmarks: Optional[np.ndarray] = None  # (68, 2) iBUG-68
    visibility: Optional[np.ndarray] = None  # (68,) probability that each landmark is visible
    pose: Optional[Pose] = None
    expression: Optional[Expression] = None
    # With flip averaging: how far apart the landmarks read on the crop and on its mirror image are
    # (mean distance in crop sides). Small on a face; large where the model reads none.
    flip_gap: Optional[float] = None
    # The model's face presence (facemtl.contract.PRESENCE): the probability that the crop holds a
    # face, flip-averaged; None for a model without that output.
    presence: Optional[float] = None

    def label(self) -> str:
        """The text drawn beside the box: the expression with its own probability, then the
        detector score, e.g. ``disgust 27% det 0.90``."""
        expression = "" if self.expression is None else f"{self.expression.label} {self.expression.probability:.0%} "
        return f"{expression}det {self.score:.2f}"

    def to_dict(self) -> dict[str, Any]:
        """The face record of ``facemtl predict --json``."""
        return {
            "box": _floats(self.box),
            "score": round(float(self.score), 4),
            "landmarks": _floats(self.landmarks),
            "visibility": _floats(self.visibility),
            "pose": None if self.pose is None else self.pose.to_dict(),
            "expression": None if self.expression is None else self.expression.to_dict(),
            "flip_gap": None if self.flip_gap is None else round(float(self.flip_gap), 5),
            "presence": None if self.presence is None else round(float(self.presence), 4),
        }

"""Head, hair and neck geometry of the ICT-FaceKit head, in millimetres: hairline bands, neck
skinning weights, material ids."""

from __future__ import annotations

import numpy as np

from facemtl.synth.facemodel import MATERIALS


# Vertical axis of the head (x = 0, z = AXIS_Z mm, head frame) for the hair sheet and torso.
AXIS_Z = -20.0
SKIN, MOUTH, SCLERA, IRIS, TEETH = (MATERIALS.index(m) for m in ("skin", "mouth", "sclera", "iris", "teeth"))


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


# Hairline: height above the brows (mm, up) as a function of the azimuth about the vertical
# head axis (0 = straight ahead; the ear is near 90): forehead, temples, sideburn, over the
# ear, nape.
_HAIRLINE_PHI = np.array([0, 30, 55, 70, 75, 82, 88, 95, 115, 140, 180], dtype=np.float64)
_HAIRLINE_UP = np.array([62, 60, 45, 22, -25, -25, 6, 8, -20, -60, -100], dtype=np.float64)
# Hair bands by the distance inside the hairline (mm): receding crown, normal, low hairline.
_HAIR_BANDS = ((25.0, 60.0), (5.0, 25.0), (-20.0, 5.0))


def hair_bands(phi: np.ndarray, y: np.ndarray, brow_y: float) -> np.ndarray:
    """(..., 3) soft membership of head points (azimuth rad, height y mm) in the hair bands."""
    line_y = brow_y - np.interp(np.abs(np.rad2deg(phi)), _HAIRLINE_PHI, _HAIRLINE_UP)
    inside = line_y - y  # mm above the hairline
    steps = [smoothstep((inside - lo) / 10.0) for lo, _ in _HAIR_BANDS]
    return np.stack([steps[0], steps[1] - steps[0], steps[2] - steps[1]], axis=-1)


# Neck skinning: points below the plane through (y, z) = JAW_A and NAPE_B (head frame, mm)
# follow the torso, fading in over NECK_FADE mm; the face and all 68 landmarks stay rigid.
_JAW_A = np.array([95.0, -100.0])
_NAPE_B = np.array([20.0, 90.0])
_NECK_FADE = 70.0
# Height (head frame y, mm) of the clothes' collar around the neck.
COLLAR_Y = 122.0
# The neck's joint with the torso (head frame, mm): the head turns about it.
NECK_JOINT = np.array([0.0, 140.0, 10.0])


def neck_weight(points: np.ndarray) -> np.ndarray:
    """Torso weight in [0, 1] of head-frame points (..., 3): 0 above the jaw-nape plane."""
    d = _NAPE_B - _JAW_A
    n = np.array([-d[1], d[0]]) / np.linalg.norm(d)
    if n[0] < 0:
        n = -n  # toward +y (down)
    s = (points[..., 1:3] - _JAW_A) @ n
    return smoothstep(s / _NECK_FADE).astype(np.float32)

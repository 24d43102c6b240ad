"""Drawing labels and predictions on images: boxes, 68 landmarks, pose axes and pose cube.

Every function draws **in place** on a BGR ``uint8`` image (H, W, 3) and returns it.
Coordinates are pixels (x right, y down, 0-based) and may be floats: lines are drawn with
OpenCV's sub-pixel ``shift`` so a point at 10.5 is drawn half-way between two pixels.

Pose (see :mod:`facemtl.geometry.rotations`) is a head-to-camera rotation ``R`` (3, 3) or
``[yaw, pitch, roll]`` degrees. Axes and cube are projected orthographically around
``center`` (as Hopenet and 6DRepNet draw them): a head vector ``v`` ends at
``center + size * (R @ v)[:2]``.

Axis colours (Hopenet Figure 1):

* red: the head's +x axis, toward the subject's left ear, i.e. to the image right for a
  frontal face;
* green: the head's +y axis, down (toward the chin);
* blue: the head's forward direction, -z, out of the face toward the viewer (it follows the
  nose: for yaw = +60 it points to the image left).
"""

from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

# BGR
RED, GREEN, BLUE = (0, 0, 255), (0, 255, 0), (255, 0, 0)
YELLOW, WHITE = (0, 255, 255), (255, 255, 255)

_SHIFT = 4  # sub-pixel bits for cv2 drawing
_ONE = 1 << _SHIFT


def _fixed(point: np.ndarray) -> tuple[int, int]:
    """Float pixel (x, y) -> OpenCV fixed-point integers for ``shift=_SHIFT``."""
    return int(round(float(point[0]) * _ONE)), int(round(float(point[1]) * _ONE))


def _check_image(image: np.ndarray) -> None:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        got = getattr(image, "shape", type(image)), getattr(image, "dtype", "")
        raise ValueError(f"expected a BGR uint8 image of shape (H, W, 3), got {got}")


def _line(image: np.ndarray, a: np.ndarray, b: np.ndarray, color: Sequence[int], thickness: int) -> None:
    if np.isfinite(a).all() and np.isfinite(b).all():
        cv2.line(image, _fixed(a), _fixed(b), color, thickness, cv2.LINE_AA, _SHIFT)


# The smallest font scale of a box's label (cv2.FONT_HERSHEY_SIMPLEX; about 10 px tall).
MIN_LABEL_SCALE = 0.35


def _thickness(image: np.ndarray, thickness: Optional[int]) -> int:
    """Default line width: 1 px up to 256 px images, growing with the image size."""
    return thickness if thickness is not None else max(1, round(max(image.shape[:2]) / 256))


def _rotation(pose: np.ndarray) -> np.ndarray:
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape == (3, 3):
        return pose
    if pose.shape == (3,):
        from facemtl.geometry.rotations import euler_to_matrix

        return euler_to_matrix(pose)
    raise ValueError(f"pose must be a rotation (3, 3) or [yaw, pitch, roll] (3,), got shape {pose.shape}")


def draw_box(image: np.ndarray, box: Sequence[float], color: Sequence[int] = GREEN, label: Optional[str] = None,
             thickness: Optional[int] = None, taken: Optional[list] = None) -> np.ndarray:
    """Draw ``box`` = ``[x1, y1, x2, y2]`` (pixels), with ``label`` written above its top-left corner.

    The label is no wider than the box unless that makes it unreadable, and stays inside the
    image (shifted left at the right edge). ``taken``: the label rectangles drawn before (this one
    is appended); the label goes above the box, else inside its top, else below it, whichever
    first overlaps none of them (neighbouring faces' labels).
    """
    _check_image(image)
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64)[:4]
    t = _thickness(image, thickness)
    corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
    for k in range(4):
        _line(image, corners[k], corners[(k + 1) % 4], color, t)
    if label:
        # Sized by the line width, but no wider than the box (a large face's label would cover its
        # neighbours' faces) while it stays readable (MIN_LABEL_SCALE).
        scale = 0.4 * t
        w = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, t)[0][0]
        scale = max(MIN_LABEL_SCALE, min(scale, scale * (x2 - x1) / w))
        stroke = max(1, min(t, round(scale / 0.4)))
        (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, stroke)
        x = int(np.clip(round(x1), 0, max(0, image.shape[1] - w - 1)))
        tops = [y1 - h - base - stroke, y1 + t, y2 + t]
        tops = [int(round(v)) for v in tops if 0 <= v <= image.shape[0] - h - base - 1] or [max(0, int(y1))]
        rects = [(x, top, x + w, top + h + base) for top in tops]
        free = [r for r in rects if not any(_overlaps(r, o) for o in (taken or []))]
        rect = (free or rects)[0]
        if taken is not None:
            taken.append(rect)
        cv2.rectangle(image, rect[:2], rect[2:], color, -1)
        cv2.putText(image, label, (rect[0], rect[1] + h), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), stroke,
                    cv2.LINE_AA)
    return image


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, visibility: Optional[np.ndarray] = None,
                   color: Sequence[int] = GREEN, occluded_color: Sequence[int] = RED,
                   radius: Optional[float] = None) -> np.ndarray:
    """Draw landmarks (N, 2) as filled dots; rows with NaN are skipped.

    ``visibility`` (N,): 1 = visible (``color``), 0 = occluded (``occluded_color``); NaN
    (unknown) is drawn as visible. ``radius`` defaults to about 1% of the image size.
    """
    _check_image(image)
    landmarks = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    vis = np.ones(len(landmarks)) if visibility is None else np.asarray(visibility, dtype=np.float64).ravel()
    if len(vis) != len(landmarks):
        raise ValueError(f"visibility has {len(vis)} entries for {len(landmarks)} landmarks")
    r = radius if radius is not None else max(1.0, max(image.shape[:2]) / 128)
    for point, v in zip(landmarks, vis):
        if np.isfinite(point).all():
            cv2.circle(image, _fixed(point), int(round(r * _ONE)), occluded_color if v == 0 else color, -1,
                       cv2.LINE_AA, _SHIFT)
    return image


def draw_axes(image: np.ndarray, pose: np.ndarray, center: Sequence[float], size: float,
              thickness: Optional[int] = None) -> np.ndarray:
    """Draw the head axes of ``pose`` (R (3, 3) or ypr degrees) from ``center``, each ``size`` px long.

    Red = head +x (image right when frontal), green = +y (down), blue = -z (forward, out of
    the face toward the viewer). Blue is drawn last so that it stays on top.
    """
    _check_image(image)
    R = _rotation(pose)
    c = np.asarray(center, dtype=np.float64)[:2]
    t = _thickness(image, thickness)
    for vector, color in (([1, 0, 0], RED), ([0, 1, 0], GREEN), ([0, 0, -1], BLUE)):
        _line(image, c, c + size * (R @ np.asarray(vector, dtype=np.float64))[:2], color, t)
    return image


# Cube corners in head units: x, y in {-1, 1}, z = -1 the face side (toward the viewer when frontal).
_CUBE = np.array([[x, y, z] for z in (-1, 1) for y in (-1, 1) for x in (-1, 1)], dtype=np.float64) / 2
_SQUARE = (0, 1, 3, 2)  # corner order around one z-face


def draw_cube(image: np.ndarray, pose: np.ndarray, center: Sequence[float], size: float,
              thickness: Optional[int] = None) -> np.ndarray:
    """Draw a ``size`` px cube turned by ``pose`` (R or ypr degrees) and centred on ``center``.

    Like 6DRepNet's ``plot_pose_cube``: the back square (behind the face) in red, the four
    edges along the head's z axis in blue, and the front square (the face side) in green,
    drawn last so it stays on top.
    """
    _check_image(image)
    R = _rotation(pose)
    pts = np.asarray(center, dtype=np.float64)[:2] + size * (_CUBE @ R.T)[:, :2]
    t = _thickness(image, thickness)
    front, back = pts[:4], pts[4:]
    for k in range(4):
        a, b = _SQUARE[k], _SQUARE[(k + 1) % 4]
        _line(image, back[a], back[b], RED, t)
    for k in range(4):
        _line(image, front[k], back[k], BLUE, t)
    for k in range(4):
        a, b = _SQUARE[k], _SQUARE[(k + 1) % 4]
        _line(image, front[a], front[b], GREEN, t)
    return image

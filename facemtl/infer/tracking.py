"""Following faces through a video: One-Euro smoothing, stable face ids, detection every N frames.

* :class:`OneEuroFilter`: the 1€ filter of Casiez, Roussel and Vogel (CHI 2012), time-based (any
  frame rate, even a varying one), elementwise on arrays, with optional angle wrap-around.
* :class:`IoUTracker`: stable ids for lists of boxes, frame after frame (IoU and centre distance,
  constant-velocity prediction, optimal assignment); a face missing for a few frames keeps its
  id when it comes back near where it was or where it was heading.
* :class:`FaceTracker`: runs a :class:`~facemtl.infer.analyzer.FaceAnalyzer` on video frames. The
  detector runs only every ``detect_every`` frames (or when no face is followed, or one was
  lost); in between, each face is analysed in the tight box of its landmarks of the previous
  frame (``analyzer(frame, boxes=...)``), which is what makes real-time rates possible. Pose,
  landmarks and box are smoothed per face id with One-Euro filters.

Boxes are ``[x1, y1, x2, y2]`` in pixels; times are seconds; pose angles are degrees
(``[yaw, pitch, roll]``, ``Pose_Para`` convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
from scipy.optimize import linear_sum_assignment

from facemtl.metrics.detection import iou


def _alpha(dt: float, cutoff: np.ndarray) -> np.ndarray:
    """Smoothing factor of a first-order low-pass filter with ``cutoff`` Hz sampled every ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def wrap(x: np.ndarray, period: float) -> np.ndarray:
    """``x`` wrapped into ``[-period / 2, period / 2)`` (e.g. degrees into [-180, 180))."""
    return (np.asarray(x, dtype=np.float64) + period / 2) % period - period / 2


class OneEuroFilter:
    """The 1€ filter (Casiez et al. 2012) on arrays of any fixed shape, elementwise.

    A low-pass filter whose cutoff rises with speed: ``cutoff = min_cutoff + beta * |speed|``
    (Hz), with the speed itself low-passed at ``d_cutoff`` Hz. ``min_cutoff`` sets the jitter
    left when still, ``beta`` the lag when moving. Each call passes the sample time, so a varying
    frame rate is handled exactly (a call with a time not after the previous one returns the
    previous estimate). The first sample is returned as is.

    ``period``: the values are angles with this period (360 for degrees): each sample is taken as
    the nearest equivalent of the previous estimate, so 179 -> -179 is a 2 degree step, not 358,
    and the output is wrapped into ``[-period / 2, period / 2)``.

    ``scale`` (per call, scalar or broadcastable): the speed is measured in units of ``scale``
    per second, e.g. the face size for landmarks in pixels, so that one ``beta`` suits small and
    large faces. Non-finite samples restart the filter for their elements.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0,
                 period: Optional[float] = None):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"need min_cutoff > 0, d_cutoff > 0, beta >= 0; got {min_cutoff}, {d_cutoff}, {beta}")
        self.min_cutoff, self.beta, self.d_cutoff, self.period = min_cutoff, beta, d_cutoff, period
        self.reset()

    def reset(self) -> None:
        self.x: Optional[np.ndarray] = None  # filtered value
        self.dx: Optional[np.ndarray] = None  # filtered speed (units of scale per second)
        self.t: Optional[float] = None

    def __call__(self, x: np.ndarray, t: float, scale: float | np.ndarray = 1.0) -> np.ndarray:
        x = np.array(x, dtype=np.float64)
        if self.period is not None:
            x = wrap(x, self.period)
        if self.x is None or self.x.shape != x.shape:
            self.x, self.dx, self.t = x, np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self.t
        if not dt > 0:
            return self.x.copy()
        if self.period is not None:
            x = self.x + wrap(x - self.x, self.period)
        fresh = ~np.isfinite(self.x)  # elements that restart from this sample
        dx = np.where(fresh, 0.0, (x - self.x) / (dt * np.asarray(scale, dtype=np.float64)))
        dx = self.dx + _alpha(dt, self.d_cutoff) * (dx - self.dx)
        cutoff = self.min_cutoff + self.beta * np.abs(dx)
        out = np.where(fresh, x, self.x + _alpha(dt, cutoff) * (x - self.x))
        if self.period is not None:
            out = wrap(out, self.period)
        self.x, self.dx, self.t = out, np.where(np.isfinite(dx), dx, 0.0), float(t)
        return out.copy()


def _centres(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def _sizes(boxes: np.ndarray) -> np.ndarray:
    """Geometric mean of width and height (a box's linear size)."""
    return np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))


@dataclass
class Track:
    """One followed face: ``id``, last seen ``box``, centre ``velocity`` (px/frame), frames ``missing``."""

    id: int
    box: np.ndarray
    velocity: np.ndarray
    missing: int = 0
    age: int = 1  # frames since birth

    @property
    def predicted(self) -> np.ndarray:
        """Where the box should be in the next frame (constant velocity)."""
        shift = self.velocity * (self.missing + 1)
        return self.box + np.r_[shift, shift]


class IoUTracker:
    """Stable ids for the boxes of successive frames.

    Each frame, boxes are matched one-to-one with the live tracks by the optimal assignment of
    the cost ``(1 - IoU) + centre distance / track size``, where each track is compared both at
    its last box and at its constant-velocity prediction (whichever is closer). A pair is
    allowed when ``IoU >= min_iou`` or ``distance <= max_distance * size``. Unmatched boxes start
    new tracks with new ids (0, 1, 2, ... never reused); a track unmatched for more than
    ``max_missing`` frames ends. The velocity is smoothed (``velocity_smoothing`` of the old
    value is kept), so that two faces crossing slowly keep their ids even where they overlap.
    """

    def __init__(self, min_iou: float = 0.2, max_distance: float = 0.5, max_missing: int = 15,
                 velocity_smoothing: float = 0.5):
        self.min_iou, self.max_distance, self.max_missing = min_iou, max_distance, max_missing
        self.velocity_smoothing = velocity_smoothing
        self.tracks: list[Track] = []
        self.next_id = 0

    def _cost(self, boxes: np.ndarray) -> np.ndarray:
        """(tracks, boxes) assignment cost; ``inf`` where a pair is not allowed."""
        last = np.array([t.box for t in self.tracks])
        pred = np.array([t.predicted for t in self.tracks])
        size = np.maximum(_sizes(last), 1e-6)[:, None]
        ov = np.maximum(iou(last, boxes), iou(pred, boxes))
        c = _centres(boxes)[None]
        dist = np.minimum(np.linalg.norm(_centres(last)[:, None] - c, axis=2),
                          np.linalg.norm(_centres(pred)[:, None] - c, axis=2)) / size
        allowed = (ov >= self.min_iou) | (dist <= self.max_distance)
        return np.where(allowed, 1.0 - ov + dist, np.inf)

    def update(self, boxes: np.ndarray) -> np.ndarray:
        """Ids (K,) of this frame's boxes (K, 4); call once per frame, with an empty array if none."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        ids = np.full(len(boxes), -1, dtype=int)
        matched: set[int] = set()
        if self.tracks and len(boxes):
            cost = self._cost(boxes)
            rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e9))
            for r, c in zip(rows, cols):
                if np.isfinite(cost[r, c]):
                    track = self.tracks[r]
                    step = (_centres(boxes[c:c + 1])[0] - _centres(track.box[None])[0]) / (track.missing + 1)
                    k = self.velocity_smoothing if track.age > 1 else 0.0
                    track.velocity = k * track.velocity + (1 - k) * step
                    track.box, track.missing, track.age = boxes[c].copy(), 0, track.age + 1
                    ids[c] = track.id
                    matched.add(r)
        for r, track in enumerate(self.tracks):
            if r not in matched:
                track.missing += 1
                track.age += 1
        self.tracks = [t for t in self.tracks if t.missing <= self.max_missing]
        for c in np.flatnonzero(ids < 0):
            self.tracks.append(Track(self.next_id, boxes[c].copy(), np.zeros(2)))
            ids[c] = self.next_id
            self.next_id += 1
        return ids

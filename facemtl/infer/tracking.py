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
  landmarks and box are smoothed per face id with One-Euro filters. At a scene cut (a jump in
  the downscaled frame, :func:`frame_change`) a face keeps its id only if the image at its box
  still looks the same (:func:`patch_similarity`); other ids end, so none passes to a stranger.

Boxes are ``[x1, y1, x2, y2]`` in pixels; times are seconds; pose angles are degrees
(``[yaw, pitch, roll]``, ``Pose_Para`` convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Optional

import cv2
import numpy as np

from facemtl.contract import landmark_box
from facemtl.geometry.rotations import euler_to_matrix
from facemtl.infer.assignment import linear_sum_assignment
from facemtl.infer.results import Face, Pose
from facemtl.metrics.detection import iou

if TYPE_CHECKING:
    from facemtl.infer.analyzer import FaceAnalyzer


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


# A scene cut: the mean absolute change of the 64x36 grey thumbnail (0-255) above this. Measured on
# the shared videos: hard cuts 27.7-30.5, the fastest motion without a cut 13.6.
CUT_THRESHOLD = 20.0
# At a cut, a face keeps its id when the normalised cross-correlation of its 24x24 grey patch
# before and after is at least this (a false cut, a flash: the same face is still there).
SAME_FACE_NCC = 0.7
_THUMB, _PATCH = (64, 36), 24


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """The frame as a 64x36 grey float image: cheap to compare, blind to noise and small motion."""
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    return cv2.resize(grey, _THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)


def frame_change(previous: np.ndarray, current: np.ndarray) -> float:
    """Mean absolute difference (0-255) of two :func:`thumbnail` images."""
    return float(np.abs(previous - current).mean())


def face_patch(frame: np.ndarray, box: np.ndarray) -> Optional[np.ndarray]:
    """The 24x24 grey patch of ``box`` (clipped to the frame), zero-mean and unit-norm; None if
    the box leaves nothing or the patch is flat."""
    h, w = frame.shape[:2]
    x1, y1 = max(int(box[0]), 0), max(int(box[1]), 0)
    x2, y2 = min(int(math.ceil(box[2])), w), min(int(math.ceil(box[3])), h)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    crop = frame[y1:y2, x1:x2]
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    patch = cv2.resize(grey, (_PATCH, _PATCH), interpolation=cv2.INTER_AREA).astype(np.float64)
    patch -= patch.mean()
    norm = np.linalg.norm(patch)
    return patch / norm if norm > 1e-6 else None


def patch_similarity(a: Optional[np.ndarray], b: Optional[np.ndarray]) -> float:
    """Normalised cross-correlation of two :func:`face_patch` patches (-1..1); -1 if one is missing."""
    return -1.0 if a is None or b is None else float((a * b).sum())


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

    def _move(self, track: Track, box: np.ndarray) -> None:
        """Move ``track`` to ``box`` and update its smoothed velocity (per frame, over missed frames too)."""
        step = (_centres(box[None])[0] - _centres(track.box[None])[0]) / (track.missing + 1)
        k = self.velocity_smoothing if track.age > 1 else 0.0
        track.velocity = k * track.velocity + (1 - k) * step
        track.box, track.missing = box.copy(), 0

    def _cost(self, tracks: list[Track], boxes: np.ndarray) -> np.ndarray:
        """(tracks, boxes) assignment cost; ``inf`` where a pair is not allowed."""
        last = np.array([t.box for t in tracks]).reshape(-1, 4)
        pred = np.array([t.predicted for t in tracks]).reshape(-1, 4)
        size = np.maximum(_sizes(last), 1e-6)[:, None]
        ov = np.maximum(iou(last, boxes), iou(pred, boxes))
        c = _centres(boxes)[None]
        dist = np.minimum(np.linalg.norm(_centres(last)[:, None] - c, axis=2),
                          np.linalg.norm(_centres(pred)[:, None] - c, axis=2)) / size
        allowed = (ov >= self.min_iou) | (dist <= self.max_distance)
        return np.where(allowed, 1.0 - ov + dist, np.inf)

    def update(self, boxes: np.ndarray, ids: Optional[np.ndarray] = None) -> np.ndarray:
        """Ids (K,) of this frame's boxes (K, 4); call once per frame, with an empty array if none.

        ``ids`` (K,): the id of each box already known to continue a live track (e.g. a face
        followed from the previous frame), -1 for boxes to match; an id whose track has ended
        counts as -1.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        out = np.full(len(boxes), -1, dtype=int) if ids is None else np.array(ids, dtype=int).reshape(-1)
        if len(out) != len(boxes):
            raise ValueError(f"{len(out)} ids for {len(boxes)} boxes")
        by_id = {t.id: t for t in self.tracks}
        moved: set[int] = set()
        for c in np.flatnonzero(out >= 0):
            track = by_id.get(int(out[c]))
            if track is None or track.id in moved:
                out[c] = -1
            else:
                self._move(track, boxes[c])
                moved.add(track.id)
        free = [t for t in self.tracks if t.id not in moved]
        todo = np.flatnonzero(out < 0)
        if free and len(todo):
            cost = self._cost(free, boxes[todo])
            for r, c in zip(*linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e9))):
                if np.isfinite(cost[r, c]):
                    self._move(free[r], boxes[todo[c]])
                    moved.add(free[r].id)
                    out[todo[c]] = free[r].id
        for track in self.tracks:
            track.age += 1
            if track.id not in moved:
                track.missing += 1
        self.tracks = [t for t in self.tracks if t.missing <= self.max_missing]
        for c in np.flatnonzero(out < 0):
            self.tracks.append(Track(self.next_id, boxes[c].copy(), np.zeros(2)))
            out[c] = self.next_id
            self.next_id += 1
        return out


@dataclass
class FilterSettings:
    """One-Euro parameters (:class:`OneEuroFilter`)."""

    min_cutoff: float
    beta: float
    d_cutoff: float = 1.0


# Defaults: lowest RMSE on simulated head motion at 30 fps (still spells and smooth moves of
# random size and length) with white noise of 1% of the face size on landmarks and 1.5 degrees
# on pose; the optimum is flat in min_cutoff and sharp in beta. Landmark and box speeds are in
# face sizes (mean of box width and height) per second, pose speeds in degrees per second.
LANDMARK_FILTER = FilterSettings(min_cutoff=0.3, beta=30.0)
POSE_FILTER = FilterSettings(min_cutoff=1.0, beta=0.1)


@dataclass
class TrackedFace:
    """A face of one video frame: stable ``id``, the (smoothed) ``face``, and whether the detector
    found it in this frame (``detected``) or it was followed from the previous frame."""

    id: int
    face: Face
    detected: bool


@dataclass
class _Candidate:
    """A box to analyse in the current frame: a followed face (``id``) or a new detection (``None``)."""

    id: Optional[int]
    box: np.ndarray
    score: float
    detected: bool


class _Followed:
    """What :class:`FaceTracker` keeps per face id."""

    def __init__(self, smooth: bool, landmark_filter: FilterSettings, pose_filter: FilterSettings):
        self.box: Optional[np.ndarray] = None  # raw landmark box of the last frame: the next crop
        self.patch: Optional[np.ndarray] = None  # its face_patch, to recognise the face after a cut
        self.score = 0.0  # last detector score
        self.unconfirmed = 0  # detector runs in a row that did not find this face
        self.active = False  # analysed in the last frame
        self.landmarks = OneEuroFilter(**vars(landmark_filter)) if smooth else None
        self.box_filter = OneEuroFilter(**vars(landmark_filter)) if smooth else None
        self.pose = OneEuroFilter(**vars(pose_filter), period=360.0) if smooth else None


class FaceTracker:
    """Analyse the frames of a video with stable face ids, smoothed results and sparse detection.

    Call it once per frame, in order, with the frame's time in seconds:
    ``tracker(frame, t) -> list[TrackedFace]``.

    The detector (``analyzer.detector``) runs on the first frame, then every ``detect_every``
    frames (with or without faces, which bounds the cost per frame), and right after a followed
    face was lost between detections.
    Each followed face is analysed in the tight box of its landmarks of the previous frame, in
    one model run (the analyzer's re-crop on the new landmarks only with ``refine_followed``, or
    on frames with a new face); on detection frames the detections that overlap no followed face
    (IoU < ``match_iou``) are added.
    A followed face is lost when its box gets smaller than ``min_size`` pixels or leaves the
    image (less than half of it inside), when it overlaps an older face (IoU > ``match_iou``:
    two boxes on one face), when the model's face presence on it falls below the analyzer's
    ``min_presence`` (a drift onto clothing or a hand ends at once; MediaPipe's face mesh drops a
    tracked face the same way), or when ``max_unconfirmed`` detector runs in a row miss it (so a
    drift onto background ends). A followed face keeps its id; a new detection gets the id of a
    face lost up to ``max_missing`` frames before when it is near where that face was or was
    heading (:class:`IoUTracker`), else a new id.

    With ``smooth``, landmarks, box and pose of each id go through :class:`OneEuroFilter`
    (``landmark_filter`` with the speed in face sizes per second, ``pose_filter`` in degrees per
    second with angle wrap-around); the next crop always uses the raw landmarks (no lag). The
    score of a followed face is its last detector score.

    A frame whose :func:`frame_change` from the previous one exceeds ``cut_threshold`` is a
    scene cut: the detector runs, and only the followed faces whose patch still matches
    (:func:`patch_similarity` >= ``same_face``) keep their ids; all other ids end.
    """

    def __init__(self, analyzer: FaceAnalyzer, detect_every: int = 5, smooth: bool = True,
                 max_unconfirmed: int = 2, max_missing: int = 15, match_iou: float = 0.3,
                 min_size: float = 8.0, refine_followed: bool = False,
                 landmark_filter: FilterSettings = LANDMARK_FILTER, pose_filter: FilterSettings = POSE_FILTER,
                 cut_threshold: float = CUT_THRESHOLD, same_face: float = SAME_FACE_NCC):
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, not {detect_every}")
        if analyzer.detector is None:
            raise ValueError("FaceTracker needs a FaceAnalyzer with a detector")
        self.analyzer, self.detect_every, self.smooth = analyzer, detect_every, smooth
        self.max_unconfirmed, self.match_iou, self.min_size = max_unconfirmed, match_iou, min_size
        self.refine_followed = refine_followed
        self.landmark_filter, self.pose_filter = landmark_filter, pose_filter
        self.ids = IoUTracker(min_iou=match_iou, max_missing=max_missing)
        self.faces: dict[int, _Followed] = {}
        self.since_detection = detect_every  # detect on the first frame
        self.lost = False
        self.cut_threshold, self.same_face = cut_threshold, same_face
        self.thumb: Optional[np.ndarray] = None
        self.cuts = 0  # scene cuts seen

    def __call__(self, frame: np.ndarray, t: float) -> list[TrackedFace]:
        thumb = thumbnail(frame)
        if self.thumb is not None and frame_change(self.thumb, thumb) > self.cut_threshold:
            self._cut(frame)
        self.thumb = thumb
        candidates = [_Candidate(i, f.box, f.score, False) for i, f in self.faces.items() if f.active]
        if self.since_detection >= self.detect_every or self.lost:
            candidates = self._detect(frame, candidates)
            self.since_detection = 0
        self.since_detection += 1
        followed = {c.id for c in candidates if c.id is not None}
        boxes = np.array([np.r_[c.box, c.score] for c in candidates]).reshape(-1, 5)
        # A followed box is already a landmark box: one model run is enough unless asked for.
        refine = None if self.refine_followed or any(c.id is None for c in candidates) else False
        faces = self.analyzer(frame, boxes=boxes, refine=refine) if len(boxes) else []
        # New detections must pass the analyzer's plausibility limits, as its own detections do;
        # followed faces its face presence only (their uncertainty and flip gap vary with blur and turns).
        was_followed = np.array([c.id is not None for c in candidates[:len(faces)]], bool)
        allowed = self.analyzer.reads_as_face(faces) | (was_followed & self.analyzer.present(faces))
        keep = self._keep(faces, frame.shape[:2], allowed)
        # A followed face that did not make it is lost: detect in the next frame to find it again
        # (a face the detector itself dropped above is not looked for again before the schedule).
        self.lost = bool(followed - {candidates[k].id for k in keep})
        # Followed faces keep their id; new detections are matched to recently lost tracks.
        known = [-1 if candidates[k].id is None else candidates[k].id for k in keep]
        ids = self.ids.update(np.array([faces[k].box for k in keep]).reshape(-1, 4), known)
        live = {track.id for track in self.ids.tracks}
        self.faces = {i: f for i, f in self.faces.items() if i in live}
        for f in self.faces.values():
            f.active = False
        out = []
        for k, i in zip(keep, ids):
            face = faces[k]
            state = self.faces.setdefault(int(i), _Followed(self.smooth, self.landmark_filter, self.pose_filter))
            state.box, state.score, state.active = face.box.copy(), face.score, True
            state.patch = face_patch(frame, face.box)
            out.append(TrackedFace(int(i), self._smoothed(state, face, t), candidates[k].detected))
        return out

    def _cut(self, frame: np.ndarray) -> None:
        """A scene cut: end every id but those of followed faces still seen at their box."""
        self.cuts += 1
        keep = {i for i, f in self.faces.items()
                if f.active and patch_similarity(f.patch, face_patch(frame, f.box)) >= self.same_face}
        self.faces = {i: f for i, f in self.faces.items() if i in keep}
        self.ids.tracks = [track for track in self.ids.tracks if track.id in keep]
        self.since_detection, self.lost = self.detect_every, False  # look for the new scene's faces

    def _detect(self, frame: np.ndarray, candidates: list[_Candidate]) -> list[_Candidate]:
        """The followed faces the detector has not missed too often, plus the new detections."""
        det_boxes, det_scores = self.analyzer.detect(frame)
        boxes = np.array([c.box for c in candidates]).reshape(-1, 4)
        ov = iou(boxes, det_boxes)
        if ov.size:
            for r, c in zip(*linear_sum_assignment(-ov)):
                if ov[r, c] >= self.match_iou:
                    candidates[r].detected, candidates[r].score = True, float(det_scores[c])
        kept = []
        for c in candidates:
            state = self.faces[c.id]
            state.unconfirmed = 0 if c.detected else state.unconfirmed + 1
            if state.unconfirmed <= self.max_unconfirmed:
                kept.append(c)
        new = ov.max(axis=0) < self.match_iou if ov.size else np.ones(len(det_boxes), bool)
        order = np.flatnonzero(new)[np.argsort(-det_scores[new], kind="stable")]
        return kept + [_Candidate(None, det_boxes[j], float(det_scores[j]), True) for j in order]

    def _keep(self, faces: list[Face], shape: tuple[int, int], allowed: np.ndarray) -> list[int]:
        """Indices of the faces to keep, in order: ``allowed``, valid boxes, no two on one face (the first wins)."""
        h, w = shape
        kept: list[int] = []
        for k, face in enumerate(faces):
            b = face.box
            if not allowed[k] or not np.all(np.isfinite(b)) or min(b[2] - b[0], b[3] - b[1]) < self.min_size:
                continue
            inside = max(min(b[2], w) - max(b[0], 0), 0) * max(min(b[3], h) - max(b[1], 0), 0)
            if inside < 0.5 * (b[2] - b[0]) * (b[3] - b[1]):
                continue
            if kept and iou(b[None], np.array([faces[j].box for j in kept])).max() > self.match_iou:
                continue
            kept.append(k)
        return kept

    def _smoothed(self, state: _Followed, face: Face, t: float) -> Face:
        """``face`` with its landmarks, box and pose through the id's One-Euro filters."""
        if not self.smooth:
            return face
        size = max(float(np.mean(face.box[2:] - face.box[:2])), 1.0)  # face size for the speed
        landmarks = None if face.landmarks is None else state.landmarks(face.landmarks, t, scale=size)
        box = landmark_box(landmarks) if landmarks is not None else state.box_filter(face.box, t, scale=size)
        pose = face.pose
        if pose is not None:
            ypr = state.pose(pose.ypr, t)
            pose = Pose(matrix=euler_to_matrix(ypr), yaw=float(ypr[0]), pitch=float(ypr[1]), roll=float(ypr[2]),
                        uncertainty=pose.uncertainty)
        return replace(face, box=box, landmarks=landmarks, pose=pose)

"""Offline face detectors, by name: ``create_detector("mos")``.

A detector is a callable ``detector(image) -> (boxes (K, 4), scores (K,))`` on a uint8 BGR
image. Boxes are ``[x1, y1, x2, y2]`` in 0-based pixel coordinates of that image, already
mapped onto the tight box of the 68 landmarks (the box the landmark model is trained on), so
the analyzer can crop them directly; for the detectors whose boxes are estimates of it (all but
MOS) the analyzer re-crops once on the predicted landmarks' box. Scores are in [0, 1], largest first.

* ``mos`` (default): the learned MOS detector (:mod:`facemtl.infer.mos_detector`), the shipped
  ``facemtl/assets/mos.onnx`` or ``model_path=`` / ``"mos:FILE.onnx"``.
* ``opencv`` (always available): OpenCV's bundled Haar cascades, frontal plus profile
  (the profile cascade sees one side; it also runs on the mirrored image for the other side),
  on a downscaled grey image, merged by non-maximum suppression.
* ``dlib``: dlib's HOG frontal detector, when dlib is installed.
* ``mediapipe``: MediaPipe's short-range BlazeFace, when mediapipe is installed.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

import cv2
import numpy as np

from facemtl.geometry.anchors import nms
from facemtl.infer.onnx_model import SHIPPED_MAX_FLIP_GAP, SHIPPED_MAX_UNCERTAINTY, SHIPPED_MIN_PRESENCE

Detector = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

# Detector box -> landmark box, as (centre shift x, centre shift y) in box widths / heights and
# (width, height) scale: medians over the 43 dlib-annotated faces of
# ../shared/data/format-samples/dlib-faces (``python -m facemtl.tools.benchmark calibrate``).
# The profile entry is for a face turned to the image's left, as the cascade sees it.
BOX_TO_LANDMARKS: dict[str, tuple[float, float, float, float]] = {
    "frontal": (0.02, 0.14, 0.81, 0.79),
    "profile": (-0.06, 0.13, 0.66, 0.66),
    "dlib": (0.05, 0.11, 0.92, 0.90),
    "mediapipe": (0.0, 0.0, 1.0, 1.0),  # not measured: mediapipe is not installed here
}


def adjust_boxes(boxes: np.ndarray, calibration: tuple[float, float, float, float]) -> np.ndarray:
    """Map (K, 4) detector boxes onto landmark boxes with a ``BOX_TO_LANDMARKS`` entry."""
    dx, dy, sx, sy = calibration
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2 + dx * w, (boxes[:, 1] + boxes[:, 3]) / 2 + dy * h
    return np.stack([cx - sx * w / 2, cy - sy * h / 2, cx + sx * w / 2, cy + sy * h / 2], axis=1)


class CascadeDetector:
    """OpenCV Haar cascades (frontal + profile on both sides), merged by :func:`nms`.

    ``min_face``: smallest face to find, as a fraction of the image's shorter side. The image is
    shrunk so that such a face fills the cascade's 24-pixel window (never enlarged), which sets
    the cost: fewer, smaller pyramid levels for a larger ``min_face``. ``scale_factor``: pyramid
    step. ``min_neighbors``: raw hits needed per face. ``profile``: run the profile cascade
    (both sides) ``"always"``, only when the frontal one finds nothing (``"fallback"``: about
    3x faster on frontal faces, but a turned face next to a frontal one is missed), or
    ``"never"``. The defaults favour recall on photos; for real-time video with near faces,
    ``min_face=0.2, scale_factor=1.2`` is about 4x faster. Scores are ``n / (n + 5)`` of the
    number ``n`` of raw hits merged into a detection: monotone, not a calibrated probability.
    """

    WINDOW = 24  # smallest window both cascades search (frontal 24x24, profile 20x20)

    def __init__(self, min_face: float = 0.1, scale_factor: float = 1.15, min_neighbors: int = 3,
                 profile: str = "fallback"):
        if profile not in ("always", "fallback", "never"):
            raise ValueError(f"profile must be 'always', 'fallback' or 'never', not {profile!r}")
        if not 0 < min_face <= 1:
            raise ValueError(f"min_face is a fraction of the image's shorter side in (0, 1], not {min_face}")
        self.min_face, self.scale_factor, self.min_neighbors = min_face, scale_factor, min_neighbors
        self.profile = profile
        self.frontal_cascade = _load_cascade("haarcascade_frontalface_default.xml")
        self.profile_cascade = _load_cascade("haarcascade_profileface.xml") if profile != "never" else None

    def _run(self, cascade: cv2.CascadeClassifier, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw detections ``[x, y, x + w, y + h]`` (pixel edges of ``grey``) and scores."""
        rects, neighbors = cascade.detectMultiScale2(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.WINDOW, self.WINDOW))
        rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        n = np.asarray(neighbors, dtype=np.float64).reshape(-1)
        return np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1), n / (n + 5)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        s = min(1.0, self.WINDOW / (self.min_face * min(h, w)))
        small = image if s == 1.0 else cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                                                   interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small)
        sh, sw = grey.shape
        boxes, scores = self._run(self.frontal_cascade, grey)
        parts = [(adjust_boxes(boxes, BOX_TO_LANDMARKS["frontal"]), scores)]
        if self.profile == "always" or (self.profile == "fallback" and len(boxes) == 0):
            b, sc = self._run(self.profile_cascade, grey)
            parts.append((adjust_boxes(b, BOX_TO_LANDMARKS["profile"]), sc))
            b, sc = self._run(self.profile_cascade, np.ascontiguousarray(grey[:, ::-1]))
            b = np.stack([sw - b[:, 2], b[:, 1], sw - b[:, 0], b[:, 3]], axis=1)
            parts.append((adjust_boxes(b, _mirror(BOX_TO_LANDMARKS["profile"])), sc))
        boxes = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        keep = nms(boxes, scores)
        # Pixel edges of the small image -> 0-based pixel centres of the full image.
        return boxes[keep] * (np.array([w, h, w, h]) / np.array([sw, sh, sw, sh])) - 0.5, scores[keep]


def _mirror(calibration: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    dx, dy, sx, sy = calibration
    return -dx, dy, sx, sy


def _load_cascade(name: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if cascade.empty():
        raise RuntimeError(f"OpenCV cascade {name} not found in {cv2.data.haarcascades}")
    return cascade


class DlibDetector:
    """dlib's HOG + linear SVM frontal face detector (needs ``dlib``)."""

    def __init__(self, upsample: int = 0):
        import dlib

        self.detector, self.upsample = dlib.get_frontal_face_detector(), upsample

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rects, scores, _ = self.detector.run(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), self.upsample, 0.0)
        boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects],
                         dtype=np.float64).reshape(-1, 4)
        # SVM margins -> (0, 1); dlib's default threshold is a margin of 0.
        scores = 1 / (1 + np.exp(-np.asarray(scores, dtype=np.float64)))
        order = np.argsort(-scores, kind="stable")
        return adjust_boxes(boxes[order], BOX_TO_LANDMARKS["dlib"]) - 0.5, scores[order]


class MediaPipeDetector:
    """MediaPipe's BlazeFace short-range detector (needs ``mediapipe``; faces within ~2 m)."""

    def __init__(self, min_confidence: float = 0.5):
        import mediapipe as mp

        self.detector = mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=min_confidence)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        found = self.detector.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).detections or []
        boxes, scores = [], []
        for d in found:
            b = d.location_data.relative_bounding_box
            boxes.append([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h])
            scores.append(d.score[0])
        boxes, scores = np.array(boxes, dtype=np.float64).reshape(-1, 4), np.array(scores, dtype=np.float64)
        order = np.argsort(-scores, kind="stable")
        return adjust_boxes(boxes[order], BOX_TO_LANDMARKS["mediapipe"]) - 0.5, scores[order]


def _mos(**kwargs) -> Detector:
    from facemtl.infer.mos_detector import MosDetector

    return MosDetector(**kwargs)


DETECTORS: dict[str, Callable[..., Detector]] = {
    "opencv": CascadeDetector,
    "dlib": DlibDetector,
    "mediapipe": MediaPipeDetector,
    "mos": _mos,  # the learned detector (facemtl.infer.mos_detector), facemtl/assets/mos.onnx
}
_REQUIRES = {"dlib": "dlib", "mediapipe": "mediapipe"}


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    """The command line's detector options (``predict``, ``video``): ``--detector``, ``--score``, ``--canvas``,
    ``--min-face``, ``--max-uncertainty``, ``--max-flip-gap``, ``--min-presence``; and ``--flip``, the main
    model's flip averaging."""
    parser.add_argument("--detector", default="mos",
                        help="face detector: mos (the shipped learned detector, default), opencv (Haar cascades), "
                             "dlib, mediapipe, or mos:FILE.onnx (facemtl export)")
    parser.add_argument("--score", type=float, default=None,
                        help="drop detections scored below this (default: the detector's own; opencv keeps all, "
                             "mos 0.5)")
    parser.add_argument("--canvas", type=int, default=None,
                        help="mos: the side images are brought to (default 416; 320 is faster, 512 finds "
                             "smaller faces)")
    parser.add_argument("--min-face", type=float, default=0.0,
                        help="drop faces smaller than this: pixels (>= 1) or a fraction of the image's shorter side; "
                             "mos then seeks no smaller face and runs on a smaller canvas, faster (0.2: half the "
                             "pixels of a 640x480 frame)")
    parser.add_argument("--max-uncertainty", type=float, default=None, metavar="DEG",
                        help="drop detections whose mean pose uncertainty is above this many degrees: the model "
                             f"reads no face there (default: {SHIPPED_MAX_UNCERTAINTY:g} with the shipped model, "
                             "none with another; inf keeps all)")
    parser.add_argument("--max-flip-gap", type=float, default=None, metavar="F",
                        help="with --flip, drop detections whose landmarks read on the face crop and on its mirror "
                             "image lie further apart than this (mean distance, fraction of the crop side): a face's "
                             f"two readings agree, a logo's do not (default: {SHIPPED_MAX_FLIP_GAP:g} with the shipped "
                             "model, none with another; inf keeps all)")
    parser.add_argument("--min-presence", type=float, default=None, metavar="P",
                        help="drop detections whose face presence (the model's probability that the crop holds a "
                             f"face) is below this (default: {SHIPPED_MIN_PRESENCE:g} with the shipped model, none "
                             "with another; 0 keeps all)")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                        help="average the landmark/pose model over each face crop and its mirror image (default; "
                             "lower error for one more model pass a face); --no-flip runs it once")


def analyzer_settings(args: argparse.Namespace) -> dict[str, Any]:
    """``FaceAnalyzer``'s keyword arguments from the command line (``predict``'s or ``video``'s), as
    plain values: the command, its worker processes and Dask workers make the same analyzer. The
    super-resolution options are passed only by a command that has them (``video`` has not)."""
    path = lambda p: None if p is None else str(p)  # noqa: E731
    settings = {"model_path": path(args.model), "detector": args.detector, "threads": args.threads,
                "score": args.score, "min_face": args.min_face, "max_uncertainty": args.max_uncertainty,
                "max_flip_gap": args.max_flip_gap, "min_presence": args.min_presence, "flip": args.flip,
                "canvas": args.canvas}
    if hasattr(args, "super_resolve"):
        settings.update(super_resolve=args.super_resolve, sr_model=path(args.sr_model), sr_threshold=args.sr_threshold)
    return settings


def available_detectors() -> list[str]:
    """Names of the detectors that can run here (their optional package is importable)."""
    import importlib.util

    return [n for n in DETECTORS if n not in _REQUIRES or importlib.util.find_spec(_REQUIRES[n]) is not None]


def create_detector(name: str = "mos", *, threads: int | None = None, score: float | None = None,
                    canvas: int | None = None, **kwargs) -> Detector:
    """A detector by name (see the module docstring); ``kwargs`` go to its constructor.

    ``"mos:PATH"`` is the MOS detector of the ONNX file ``PATH`` (one string, so the command
    line's ``--detector`` and the worker processes that get it by name need nothing more).
    ``threads``, ``score`` (its threshold) and ``canvas`` are the MOS detector's run-time settings,
    ignored by the others (an analyzer passes them whatever the name); ``None`` keeps MOS's own."""
    if name.startswith("mos:"):
        name, kwargs = "mos", {"model_path": name[4:]} | kwargs
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}")
    if name not in available_detectors():
        raise ValueError(f"detector {name!r} needs the {_REQUIRES[name]!r} package, which is not installed; "
                         f"available: {', '.join(available_detectors())}")
    if name == "mos":
        given = {"threads": threads, "score": score, "canvas": canvas}
        kwargs = {k: v for k, v in given.items() if v is not None} | kwargs
    return DETECTORS[name](**kwargs)

"""The MOS face detector's anchors and its box / five-point coding, in numpy (no torch).

The one place both sides read: the training target builder (:mod:`facemtl.train.detection`)
encodes ground truth with it, the torch-free runtime (:mod:`facemtl.infer.mos_detector`) decodes
the ONNX outputs with it, so the two cannot disagree.

Coordinates are the package's 0-based pixel centres (pixel ``i`` covers ``[i - 0.5, i + 0.5]``).
The network trains on square ``spec.input_size`` canvases; at run time it sees the image
letterboxed into the top-left corner of a canvas whose longer side is the runtime's ``canvas``
(:mod:`facemtl.infer.mos_detector`) and whose shorter side is rounded up to a multiple of 32
(:func:`run_canvas`): at 320 a 640x480 frame costs a 320x256 pass, not 320x320 (the network is
fully convolutional). Anchors are squares centred on the cells of strides 8, 16 and 32,
cell ``j`` of stride ``s`` at ``(j + 0.5) s - 0.5``, ``len(sizes[level])`` sides per cell, in
the order level, row, column, anchor (the order the model flattens its outputs in). Boxes are
the tight boxes of the 68 landmarks (the box the landmark model crops around, so the analyzer
needs no calibration); the five points are the eye centres, the nose tip and the mouth corners.

Box coding (SSD / RetinaFace): centre offset over the anchor side divided by ``variances[0]``,
log size ratio divided by ``variances[1]``; points as centre offsets like the box centre.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from facemtl.geometry.resample import area_resize

N_POINTS = 5  # left eye, right eye (image left to right on a frontal face), nose tip, mouth corners
# iBUG-68 indices averaged for each of the five points.
FIVE_FROM_68: tuple[tuple[int, ...], ...] = (tuple(range(36, 42)), tuple(range(42, 48)), (30,), (48,), (54,))
# Run-time canvas sides are multiples of this, the backbone's largest stride (:func:`letterbox`).
CANVAS_MULTIPLE = 32
# A mirrored face swaps the eyes and the mouth corners.
FLIP_5 = np.array([1, 0, 2, 4, 3])


@dataclass(frozen=True)
class AnchorSpec:
    """Input side, feature strides, anchor sides (input pixels) per stride, coding variances."""

    input_size: int = 320
    strides: tuple[int, ...] = (8, 16, 32)
    sizes: tuple[tuple[float, ...], ...] = ((12.0, 24.0), (40.0, 72.0), (128.0, 224.0))
    variances: tuple[float, float] = (0.1, 0.2)

    @property
    def per_cell(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.sizes)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "AnchorSpec":
        d = json.loads(text)
        return cls(int(d["input_size"]), tuple(d["strides"]), tuple(tuple(s) for s in d["sizes"]),
                   tuple(d["variances"]))

    @classmethod
    def from_options(cls, options: dict) -> "AnchorSpec":
        """From a config's ``model_options`` subset (``input_size``, ``strides``, ``sizes``, ``variances``)."""
        d = asdict(cls())
        d.update({k: v for k, v in options.items() if k in d})
        return cls.from_json(json.dumps(d))


def priors(spec: AnchorSpec, shape: tuple[int, int] | None = None) -> np.ndarray:
    """(A, 4) anchors ``[cx, cy, side, side]`` in input pixels, in the model's output order, for a
    canvas of ``shape`` (height, width); default the square ``spec.input_size`` one."""
    h, w = shape or (spec.input_size, spec.input_size)
    out = []
    for stride, sides in zip(spec.strides, spec.sizes):
        # ceil: a stride-2 conv chain on an odd side rounds up
        cy, cx = np.meshgrid(*((np.arange(-(-n // stride)) + 0.5) * stride - 0.5 for n in (h, w)), indexing="ij")
        for_cell = [np.stack([cx, cy, np.full_like(cx, s), np.full_like(cx, s)], -1) for s in sides]
        out.append(np.stack(for_cell, 2).reshape(-1, 4))
    return np.concatenate(out)


def prior_boxes(anchors: np.ndarray) -> np.ndarray:
    """(A, 4) ``[cx, cy, w, h]`` -> ``[x1, y1, x2, y2]``."""
    return np.concatenate([anchors[:, :2] - anchors[:, 2:] / 2, anchors[:, :2] + anchors[:, 2:] / 2], 1)


def encode_boxes(boxes: np.ndarray, anchors: np.ndarray, variances: tuple[float, float]) -> np.ndarray:
    """(A, 4) ``[x1, y1, x2, y2]`` matched to (A, 4) anchors -> (A, 4) regression targets."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = np.maximum(boxes[:, 2:] - boxes[:, :2], 1e-6)
    return np.concatenate([(centre - anchors[:, :2]) / (variances[0] * anchors[:, 2:]),
                           np.log(size / anchors[:, 2:]) / variances[1]], 1)


def decode_boxes(deltas: np.ndarray, anchors: np.ndarray, variances: tuple[float, float]) -> np.ndarray:
    """(..., A, 4) regression outputs -> (..., A, 4) ``[x1, y1, x2, y2]``; inverse of :func:`encode_boxes`."""
    deltas = np.asarray(deltas, dtype=np.float64)
    centre = anchors[:, :2] + deltas[..., :2] * variances[0] * anchors[:, 2:]
    # The clip keeps an untrained or garbage output from overflowing exp.
    size = anchors[:, 2:] * np.exp(np.clip(deltas[..., 2:] * variances[1], -10, 10))
    return np.concatenate([centre - size / 2, centre + size / 2], -1)


def encode_points(points: np.ndarray, anchors: np.ndarray, variances: tuple[float, float]) -> np.ndarray:
    """(A, K, 2) points matched to (A, 4) anchors -> (A, K, 2) regression targets."""
    return (points - anchors[:, None, :2]) / (variances[0] * anchors[:, None, 2:])


def decode_points(deltas: np.ndarray, anchors: np.ndarray, variances: tuple[float, float]) -> np.ndarray:
    """(..., A, K, 2) regression outputs -> points; inverse of :func:`encode_points`."""
    return anchors[:, None, :2] + np.asarray(deltas, dtype=np.float64) * variances[0] * anchors[:, None, 2:]


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """(..., 68, 2) iBUG-68 landmarks -> (..., 5, 2) eye centres, nose tip, mouth corners (NaN stays NaN)."""
    return np.stack([landmarks[..., list(idx), :].mean(-2) for idx in FIVE_FROM_68], -2)


def letterbox(image: np.ndarray, size: int, multiple: int | None = None) -> tuple[np.ndarray, float]:
    """Shrink (or enlarge) ``image`` to fit a ``size`` square, put it top-left on black.

    Returns ``(canvas, scale)``: an image point ``p`` is at ``(p + 0.5) * scale - 0.5`` on the
    canvas (pixel edges map to pixel edges). The canvas is (size, size, 3) uint8, or with
    ``multiple`` each side is the resized image's rounded up to a multiple of it (no wasted rows).
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = min(size, max(1, round(w * scale))), min(size, max(1, round(h * scale)))
    ch, cw = (size, size) if multiple is None else (-(-n // multiple) * multiple for n in (nh, nw))
    canvas = np.zeros((ch, cw, 3), np.uint8)
    canvas[:nh, :nw] = area_resize(image, (nw, nh))  # as INTER_AREA, which the detector trained on
    return canvas, scale


def run_canvas(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """The detector's run-time canvas: :func:`letterbox` to a longer side of ``size``, or of the
    image's own rounded up when it is smaller (never enlarged further), each side a multiple of
    :data:`CANVAS_MULTIPLE` (a 640x480 frame at 320 is a 320x256 pass, a 250x250 photo 256x256)."""
    side = min(size, -(-max(image.shape[:2]) // CANVAS_MULTIPLE) * CANVAS_MULTIPLE)
    return letterbox(image, side, CANVAS_MULTIPLE)


def from_canvas(points: np.ndarray, scale: float) -> np.ndarray:
    """Canvas coordinates (any shape ending in x, y pairs) -> image coordinates (:func:`letterbox`)."""
    return (np.asarray(points, dtype=np.float64) + 0.5) / scale - 0.5


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.3,
        containment: float = 0.7) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first.

    A box is dropped when its IoU with a kept box exceeds ``iou_threshold`` or when more than
    ``containment`` of the smaller box lies inside the kept one (a frontal and a profile hit on
    the same face often nest rather than overlap; ``containment > 1`` turns that test off).
    """
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while len(order):
        # Keep the best remaining box and drop every box it suppresses: one pass per kept box.
        i, rest = int(order[0]), order[1:]
        keep.append(i)
        w = np.clip(np.minimum(boxes[rest, 2], boxes[i, 2]) - np.maximum(boxes[rest, 0], boxes[i, 0]), 0, None)
        h = np.clip(np.minimum(boxes[rest, 3], boxes[i, 3]) - np.maximum(boxes[rest, 1], boxes[i, 1]), 0, None)
        inter = w * h
        iou = inter / np.maximum(areas[rest] + areas[i] - inter, 1e-9)
        contained = inter / np.maximum(np.minimum(areas[rest], areas[i]), 1e-9)
        order = rest[(iou <= iou_threshold) & (contained <= containment)]
    return np.array(keep, dtype=int)


def detections(scores: np.ndarray, box_deltas: np.ndarray, point_deltas: np.ndarray, anchors: np.ndarray,
               spec: AnchorSpec, score_threshold: float = 0.5, nms_iou: float = 0.4,
               top_k: int = 500) -> dict[str, np.ndarray]:
    """One canvas's raw outputs -> faces, in canvas pixels, best score first.

    ``scores`` (A,) probabilities, ``box_deltas`` (A, 4), ``point_deltas`` (A, 5, 2). Keeps
    the ``top_k`` best anchors at or above ``score_threshold``, decodes them, and suppresses
    overlaps (IoU > ``nms_iou``; nested boxes are left to the IoU test: in a crowd a small
    face can sit in a big face's box corner). Returns ``boxes`` (K, 4), ``scores`` (K,),
    ``points`` (K, 5, 2) and ``index`` (K,), the anchor of each face (for per-anchor outputs
    such as the pose).
    """
    if len(scores) != len(anchors):
        raise ValueError(f"{len(scores)} anchor outputs for {len(anchors)} anchors: not this canvas's anchors")
    idx = np.flatnonzero(scores >= score_threshold)
    idx = idx[np.argsort(-scores[idx], kind="stable")[:top_k]]
    boxes = decode_boxes(box_deltas[idx], anchors[idx], spec.variances)
    points = decode_points(point_deltas[idx], anchors[idx], spec.variances)
    keep = nms(boxes, scores[idx], nms_iou, containment=2.0)
    return {"boxes": boxes[keep].reshape(-1, 4), "scores": scores[idx][keep].astype(np.float64),
            "points": points[keep].reshape(-1, N_POINTS, 2), "index": idx[keep]}

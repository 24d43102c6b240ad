"""The MOS face detector at run time (no torch): ``create_detector("mos", model_path=...)``.

Letterbox the image onto a canvas of the model's side, its shorter side cut to the image's
(rounded up to the backbone's stride 32; :func:`facemtl.geometry.anchors.run_canvas`), run the
ONNX file of ``facemtl export`` on a MOS checkpoint, decode the anchors' box and point
codes and suppress overlaps in numpy (:func:`facemtl.geometry.anchors.detections`, the coding
the training targets use), map back to the image, drop faces under ``min_face``. A ``min_face``
also shrinks the canvas until faces of that size are :data:`RELIABLE_FACE` canvas pixels (the
detector seeks no smaller face, so it need not draw the image larger): MediaPipe's short-range
trade, faster for near faces only.

Boxes are the tight boxes of the 68 landmarks (what the detector is trained on), so the analyzer
crops them without calibration. :meth:`MosDetector.detect` also gives each face's five points
(eye centres, nose tip, mouth corners) and head pose (rotation matrix and yaw, pitch, roll).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from facemtl.contract import DETECTOR_OUTPUTS, INPUT_NAME
from facemtl.geometry.anchors import AnchorSpec, detections, from_canvas, priors, run_canvas
from facemtl.geometry.rotations import matrix_to_euler, sixd_to_matrix
from facemtl.infer.onnx_model import cpu_session
from facemtl.io import FileError

DEFAULT_MOS = Path(__file__).resolve().parents[1] / "assets" / "mos.onnx"
# The longer side images are brought to by default. Chosen for detector d749e638 (trained on 320 px
# canvases), which scored faces under about 32 canvas pixels low: at 320 a 4x4 mosaic of 250 px LFW
# photos gave 9 of 16 faces, at 416 all 16, for 8.0 -> 16.9 ms on a 640x480 frame (int8, 2 threads).
# The shipped 37eab3c3 finds dlib VOC's faces 39/43 at 320, 43/43 at 416 (docs/BENCHMARKS.md).
DEFAULT_CANVAS = 416
# A face whose landmark box is this many canvas pixels on its longer side is found about as at full
# size. Sharp frontal faces need less: the shipped 37eab3c3 finds all held-out 300-W and LFW faces
# drawn at 20 to 200 px (96/100 and 426/435 at 16; `python scripts/detector_face_size.py`). Turned,
# dark and occluded ones need more: on the held-out rendered scenes, faces of at least 1.25 x 0.2 of
# the shorter side, min_face 0.2 found 213 / 225 / 229 of 239 with this at 32 / 40 / 48 and 234 on
# the full 416 canvas, for 6.3 / 9.4 / 16.0 / 18.6 ms on the 640x480 frame (one-off, 2026-12-07).
RELIABLE_FACE = 40.0


def min_face_pixels(min_face: float, image_shape: tuple[int, ...]) -> float:
    """``min_face`` in pixels: as given when >= 1, else a fraction of the image's shorter side."""
    return float(min_face) if min_face >= 1 else float(min_face) * min(image_shape[:2])


class MosDetector:
    """A MOS ONNX file as a :data:`facemtl.infer.detector.Detector`.

    ``model_path``: the ONNX file (default the shipped ``facemtl/assets/mos.onnx``).
    ``score``: the face-score threshold. ``min_face``: smallest face kept, in pixels of the
    landmark box's longer side (>= 1) or as a fraction of the image's shorter side (< 1); the
    canvas then shrinks (:meth:`canvas_side`), so a larger one is faster (a 640x480 frame at 0.2:
    a 288x224 pass instead of 416x320). ``nms_iou``: overlap above which the lower-scored of two
    boxes is dropped. ``canvas``: the longer side the image is brought to (default
    :data:`DEFAULT_CANVAS`; a smaller image is not enlarged beyond its own side rounded up to 32);
    a larger one finds smaller faces at a quadratic cost (the network is fully convolutional), a
    smaller one is faster.
    """

    landmark_boxes = True  # its boxes are the landmark box itself (what it learnt), not an estimate

    def __init__(self, model_path: str | Path | None = None, score: float = 0.5, min_face: float = 0.0,
                 nms_iou: float = 0.4, threads: int = 2, canvas: int | None = None):
        path = Path(model_path) if model_path is not None else DEFAULT_MOS
        if model_path is None and not path.is_file():
            raise FileError(path, "the shipped MOS detector is missing: reinstall facemtl, or train one "
                                  "(facemtl train --config mos), export it (facemtl export) and pass model_path=")
        self.session = cpu_session(path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        if "facemtl_detector" not in meta:
            raise FileError(path, "not a facemtl face detector (no facemtl_detector metadata)")
        names = [o.name for o in self.session.get_outputs()]
        if names != list(DETECTOR_OUTPUTS):
            raise FileError(path, f"detector outputs {names}, expected {list(DETECTOR_OUTPUTS)}: exported by an "
                                  "earlier facemtl; export its checkpoint again (facemtl export)")
        self.spec = AnchorSpec.from_json(meta["facemtl_detector"])
        self._anchors: dict[tuple[int, int], np.ndarray] = {}  # per canvas shape
        self.path, self.name = path, meta.get("facemtl_model", "")
        self.score, self.min_face, self.nms_iou = score, min_face, nms_iou
        self.canvas = int(canvas or DEFAULT_CANVAS)

    def anchors(self, shape: tuple[int, int]) -> np.ndarray:
        """The anchors of a canvas of ``shape`` (height, width), made once per shape."""
        if shape not in self._anchors:
            self._anchors[shape] = priors(self.spec, shape)
        return self._anchors[shape]

    def canvas_side(self, shape: tuple[int, ...]) -> int:
        """The canvas's longer side for an image of ``shape``: :attr:`canvas`, or less when ``min_face``
        is set, just enough to draw a face of ``min_face`` at :data:`RELIABLE_FACE` canvas pixels."""
        if self.min_face <= 0:
            return self.canvas
        need = max(shape[:2]) * RELIABLE_FACE / min_face_pixels(self.min_face, shape)
        return min(self.canvas, math.ceil(need))

    def raw(self, canvas: np.ndarray) -> dict[str, np.ndarray]:
        """The ONNX outputs for one uint8 BGR canvas (H, W, 3), batch axis dropped."""
        x = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        outputs = self.session.run(list(DETECTOR_OUTPUTS), {INPUT_NAME: x})  # the names __init__ checked
        return {k: v[0] for k, v in zip(DETECTOR_OUTPUTS, outputs)}

    def detect(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Faces of a uint8 BGR image, best score first: ``boxes`` (K, 4), ``scores`` (K,),
        ``points`` (K, 5, 2) in image pixels, ``rotation`` (K, 3, 3), ``pose`` (K, 3) degrees."""
        found, out, scale = self._found(image)
        rotation = sixd_to_matrix(out["rot6d"][found["index"]]).reshape(-1, 3, 3)
        return {"boxes": found["boxes"], "scores": found["scores"], "points": from_canvas(found["points"], scale),
                "rotation": rotation, "pose": matrix_to_euler(rotation).reshape(-1, 3)}

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (K, 4) and scores (K,) alone, as :meth:`detect` gives them (the analyzer's need: the
        points and pose it skips cost 0.1 ms a call)."""
        found, _, _ = self._found(image)
        return found["boxes"], found["scores"]

    def _found(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
        """The faces of at least ``min_face`` (:func:`~facemtl.geometry.anchors.detections`; boxes in
        image pixels, points still on the canvas), the raw outputs and the canvas scale."""
        canvas, scale = run_canvas(image, self.canvas_side(image.shape))
        out = self.raw(canvas)
        found = detections(out["scores"], out["box_deltas"], out["point_deltas"], self.anchors(canvas.shape[:2]),
                           self.spec, self.score, self.nms_iou)
        boxes = from_canvas(found["boxes"], scale)
        side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        keep = side >= min_face_pixels(self.min_face, image.shape)
        found = {**{k: v[keep] for k, v in found.items()}, "boxes": boxes[keep]}
        return found, out, scale

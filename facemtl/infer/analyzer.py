"""``FaceAnalyzer``: image -> faces (box, landmarks, visibility, pose, expression), no torch.

Pipeline per image: detect faces (or take the caller's boxes) -> cut the model's square crop
around each box (:func:`facemtl.contract.crop_face`, the one crop of training and
evaluation) -> run the ONNX model (``docs/model-format.md``) on all crops at once -> map the
landmarks back to the image through the crop matrix -> re-crop once on the tight box of the
predicted landmarks (the box the model is trained on; detector and tracker boxes only
approximate it) and run the model again -> the expression model (when there is one, by
default the shipped ``facemtl/assets/expression.onnx``) on its own crop around the tight box of
the final landmarks -> :class:`~facemtl.infer.results.Face` results.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence, Union

import cv2
import numpy as np

from facemtl.contract import FLIP_GAP, PRESENCE, crop_face, landmark_box, landmarks_to_image, model_reading
from facemtl.geometry.rotations import euler_to_matrix, matrix_to_euler
from facemtl.infer.detector import Detector, create_detector
from facemtl.infer.mos_detector import min_face_pixels
from facemtl.infer.onnx_model import (SHIPPED_MAX_FLIP_GAP, SHIPPED_MAX_UNCERTAINTY, SHIPPED_MIN_PRESENCE, OnnxModel,
                                      combine_expressions, is_shipped, shipped_expression_model)
from facemtl.infer.results import Expression, Face, Pose
from facemtl.infer.superres import SuperResolver, sr_crop
from facemtl.io import FileError, read_image, to_bgr8

ImageLike = Union[np.ndarray, str, Path]


def _presence(faces: Sequence[Face]) -> np.ndarray:
    """``Face.presence`` of each face, NaN where the model has no such output."""
    return np.array([np.nan if f.presence is None else f.presence for f in faces])


class FaceAnalyzer:
    """Analyse every face of an image with a facemtl ONNX model.

    ``model_path``: an ONNX file following ``docs/model-format.md``; ``None`` loads the shipped
    ``facemtl/assets/default.onnx`` (``default.int8.onnx`` beside it: about 1 ms less a face).
    ``detector``: a name of :mod:`facemtl.infer.detector` (``"mos"``, the shipped learned detector,
    default; ``"opencv"``, ``"dlib"``, ``"mediapipe"``, ``"mos:FILE.onnx"``), a callable
    ``image -> (boxes, scores)``, or ``None`` to always pass boxes. ``threads``: CPU threads of
    onnxruntime and OpenCV (OpenCV's setting is process-wide). ``refine``: re-crop once on the
    predicted landmarks' box; ``None`` (default): only when the detector's boxes are estimates of
    it (the cascades, dlib, mediapipe, a callable) — MOS gives the landmark box itself, and on the
    held-out 300-W faces a second pass on its boxes did not lower the landmark error (figures in
    issue #12's note).
    ``flip``: test-time flip averaging (:func:`facemtl.contract.flip_averaged`): the main model also
    runs on the mirrored crop and the two answers are averaged; twice its work a face for lower
    error on every held-out set (docs/MODEL_CARD.md, "Flip averaging"); ``False`` for speed.
    A model with two pose heads reports one pose, their fusion (:func:`facemtl.contract.fuse_pose_heads`).
    ``max_batch``: most crops per model call. ``expression_model``: the ONNX file of a dedicated
    expression network (docs/model-format.md, "The expression model") run as a second call on
    its own crop around the final landmarks' box; ``face.expression`` is then the mean of its
    probabilities and the main model's head's (:func:`~facemtl.infer.onnx_model.combine_expressions`).
    ``None`` (default): with a shipped main model (``model_path`` ``None`` or a file in
    ``facemtl/assets/``), the shipped ``facemtl/assets/expression.onnx`` when it exists; otherwise
    the main model's expression head. ``False``: always the main model's head.
    ``score``: drop detections scored below it (``None``: the detector's own threshold; the
    cascades keep all, MOS keeps 0.5 and up; a MOS detector made here by name thresholds at
    ``score``, so a lower one finds more);
    ``min_face``: drop detections whose box's longer side is under this many pixels (>= 1) or
    this fraction of the image's shorter side (< 1); a MOS detector made here by name then also
    runs on a smaller canvas (faster: it seeks no smaller face). Both apply to detections only,
    not to boxes the caller passes. ``canvas``: a MOS detector's run-time side (``None``: 416; 320 is
    faster, 512 finds smaller faces; :class:`facemtl.infer.mos_detector.MosDetector`).
    ``max_uncertainty``: drop detections whose pose uncertainty (the model's ``pose_std`` averaged
    over yaw, pitch and roll, degrees) is above it: the model does not read a face there (logos,
    patterned cloth, figurines the detector takes for faces). ``None`` (default): with the shipped
    model its :data:`~facemtl.infer.onnx_model.SHIPPED_MAX_UNCERTAINTY`, with another no limit (its
    ``pose_std`` may not be calibrated); ``math.inf``: no limit. Detections only, like ``score``.
    ``max_flip_gap``: with ``flip``, also drop detections whose landmarks read on the crop and on its
    mirror image lie further apart than this (mean distance in crop sides,
    :data:`facemtl.contract.FLIP_GAP`): a face's two readings agree, a logo's or a sleeve's do not.
    ``None`` (default): :data:`~facemtl.infer.onnx_model.SHIPPED_MAX_FLIP_GAP` with the shipped
    model, no limit with another; ``math.inf``: no limit.
    ``min_presence``: drop detections whose face presence (the model's :data:`facemtl.contract.PRESENCE`
    output, flip-averaged: the probability that the crop holds a face; ``Face.presence``) is below it:
    lettering, torsos and jackets that the two limits above let through. ``None`` (default):
    :data:`~facemtl.infer.onnx_model.SHIPPED_MIN_PRESENCE` with the shipped model, no limit with
    another; 0: no limit. A model without the output passes every face.
    ``super_resolve``: faces whose box is smaller than
    ``sr_threshold`` pixels (its longer side) are cropped at their own resolution and super-resolved
    to the model's input (:mod:`facemtl.infer.superres`, ``sr_model``: the generator's ONNX file,
    ``None`` the shipped one) instead of being interpolated.
    """

    def __init__(self, model_path: str | Path | None = None,
                 detector: Union[str, Detector, None] = "mos", threads: int = 2,
                 refine: Optional[bool] = None, max_batch: int = 64, score: Optional[float] = None,
                 min_face: float = 0.0, max_uncertainty: Optional[float] = None,
                 expression_model: Union[str, Path, bool, None] = None, super_resolve: bool = False,
                 sr_model: str | Path | None = None, sr_threshold: float = 40.0, canvas: Optional[int] = None,
                 flip: bool = True, max_flip_gap: Optional[float] = None, min_presence: Optional[float] = None):
        self.model = OnnxModel(model_path, threads, max_batch)
        self._predict = model_reading(self.model.predict, flip)
        self.resolver = SuperResolver(sr_model, threads) if super_resolve else None
        self.sr_threshold = sr_threshold
        # The model's metadata, read by the CLI commands and scripts.
        m = self.model
        self.input_size, self.crop_scale, self.max_batch = m.input_size, m.crop_scale, m.max_batch
        self.expressions, self.model_name, self.model_path = m.expressions, m.name, m.path
        self.score, self.min_face = score, min_face
        if max_uncertainty is None:
            max_uncertainty = SHIPPED_MAX_UNCERTAINTY if is_shipped(model_path) else math.inf
        self.max_uncertainty = max_uncertainty
        if max_flip_gap is None:
            max_flip_gap = SHIPPED_MAX_FLIP_GAP if is_shipped(model_path) else math.inf
        self.max_flip_gap = max_flip_gap
        if min_presence is None:
            min_presence = SHIPPED_MIN_PRESENCE if is_shipped(model_path) else 0.0
        self.min_presence = min_presence
        if expression_model is None:
            expression_model = shipped_expression_model(model_path) or False
        self.expression_model: Optional[OnnxModel] = None
        if expression_model is not False:
            self.expression_model = OnnxModel(expression_model, threads, max_batch)
            if "expression" not in self.expression_model.outputs:
                raise FileError(expression_model, "expression model without an 'expression' output")
            if "expression" in m.outputs and m.expressions != self.expression_model.expressions:
                raise FileError(expression_model, f"expression classes {self.expression_model.expressions} differ "
                                                  f"from the main model's {m.expressions}")
            self.expressions = self.expression_model.expressions
        cv2.setNumThreads(threads)
        self.detector: Optional[Detector] = detector
        if isinstance(detector, str):
            # MOS seeks no face under min_face (a smaller canvas, faster); the others' are dropped in detect().
            mos = {"min_face": min_face} if detector.split(":")[0] == "mos" else {}
            self.detector = create_detector(detector, threads=threads, score=score, canvas=canvas, **mos)
        self.refine = not getattr(self.detector, "landmark_boxes", False) if refine is None else refine

    def __call__(self, image: ImageLike, boxes: Optional[np.ndarray] = None,
                 refine: Optional[bool] = None) -> list[Face]:
        """Faces of one image (BGR/grey/BGRA array or file path).

        ``boxes``: (K, 4) ``[x1, y1, x2, y2]`` or (K, 5) with a score, to skip detection (e.g.
        from a tracker); the model applies its own crop margin around them. ``refine``
        overrides the analyzer's setting for this call: a tracker that passes the previous
        frame's landmark boxes can skip the second model run.
        """
        return self.batch([image], None if boxes is None else [boxes], refine)[0]

    def batch(self, images: Sequence[ImageLike], boxes: Optional[Sequence[Optional[np.ndarray]]] = None,
              refine: Optional[bool] = None) -> list[list[Face]]:
        """Faces of several images; the crops of all images share model calls.

        ``boxes``: one entry per image, ``None`` to detect in that image.
        """
        if boxes is not None and len(boxes) != len(images):
            raise ValueError(f"{len(images)} images but {len(boxes)} box lists")
        arrays = [self._load(im) for im in images]
        all_boxes, all_scores, owner, detected = [], [], [], []
        for i, image in enumerate(arrays):
            given = None if boxes is None else boxes[i]
            b, s = self._boxes(image, given)
            all_boxes.append(b)
            all_scores.append(s)
            owner.extend([i] * len(b))
            detected.extend([given is None] * len(b))
        result: list[list[Face]] = [[] for _ in arrays]
        if not owner:
            return result
        crop_boxes, scores = np.concatenate(all_boxes), np.concatenate(all_scores)
        out, matrices = self._run(arrays, owner, crop_boxes)
        if (self.refine if refine is None else refine) and "landmarks" in out:
            crop_boxes = self._landmark_boxes(out, matrices, crop_boxes)
            out, matrices = self._run(arrays, owner, crop_boxes)
        n = len(owner)
        std = out["pose_std"].mean(axis=1) if "pose_std" in out else np.full(n, np.nan)
        keep = ~np.array(detected) | self._plausible(std, out.get(FLIP_GAP, np.full(n, np.nan)),
                                                     out.get(PRESENCE, np.full(n, np.nan)))
        if not keep.all():
            out = {k: v[keep] for k, v in out.items()}
            matrices, crop_boxes, scores = matrices[keep], crop_boxes[keep], scores[keep]
            owner = [i for i, k in zip(owner, keep) if k]
            if not owner:
                return result
        if self.expression_model is not None:
            out["expression"] = combine_expressions(out.get("expression"),
                                                    self._expression(arrays, owner, out, matrices, crop_boxes))
        faces = self._decode(out, matrices, crop_boxes, scores)
        for i, face in zip(owner, faces):
            result[i].append(face)
        return result

    # -- steps -----------------------------------------------------------------------------------

    @staticmethod
    def _load(image: ImageLike) -> np.ndarray:
        if isinstance(image, (str, Path)):
            return read_image(image)
        return to_bgr8(np.asarray(image))

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The detector's boxes (K, 4) and scores (K,) on a BGR image, with ``score`` and ``min_face``
        applied (the model's plausibility limits apply later, to the analysed faces)."""
        if self.detector is None:
            raise ValueError("this FaceAnalyzer has no detector: pass boxes")
        b, s = self.detector(image)
        b, s = np.asarray(b, dtype=np.float64).reshape(-1, 4), np.asarray(s, dtype=np.float64).reshape(-1)
        side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
        keep = (s >= (self.score or 0.0)) & (side >= min_face_pixels(self.min_face, image.shape))
        return b[keep], s[keep]

    def reads_as_face(self, faces: Sequence[Face]) -> np.ndarray:
        """Which of ``faces`` pass the model's plausibility limits (``max_uncertainty``, ``max_flip_gap``,
        ``min_presence``): what the analyzer checks on its own detections, for callers that pass a
        detector's boxes themselves (the video tracker)."""
        nan = float("nan")
        std = np.array([nan if f.pose is None or f.pose.uncertainty is None else np.mean(f.pose.uncertainty)
                        for f in faces])
        gap = np.array([nan if f.flip_gap is None else f.flip_gap for f in faces])
        return self._plausible(std, gap, _presence(faces))

    def present(self, faces: Sequence[Face]) -> np.ndarray:
        """Which of ``faces`` pass ``min_presence`` alone (a model without the output passes all): what
        the video tracker checks on the faces it follows."""
        return self._present(_presence(faces))

    def _plausible(self, mean_std: np.ndarray, flip_gap: np.ndarray, presence: np.ndarray) -> np.ndarray:
        """Mean ``pose_std``, flip gap and presence per face -> within the limits (NaN: not measured, passes)."""
        return ~(mean_std > self.max_uncertainty) & ~(flip_gap > self.max_flip_gap) & self._present(presence)

    def _present(self, presence: np.ndarray) -> np.ndarray:
        return ~(presence < self.min_presence)

    def _boxes(self, image: np.ndarray, boxes: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if boxes is None:
            return self.detect(image)
        b = np.asarray(boxes, dtype=np.float64)
        if b.size == 0:
            return np.zeros((0, 4)), np.zeros(0)
        if b.ndim != 2 or b.shape[1] not in (4, 5):
            raise ValueError(f"boxes must be (K, 4) [x1, y1, x2, y2] or (K, 5) with a score, got shape {b.shape}")
        bad = ~np.all(np.isfinite(b), axis=1) | (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
        if bad.any():
            raise ValueError(f"invalid box {b[np.argmax(bad)].tolist()}: need finite x1 < x2 and y1 < y2")
        return b[:, :4], (b[:, 4] if b.shape[1] == 5 else np.ones(len(b)))

    def _run(self, images: list[np.ndarray], owner: list[int],
             boxes: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Model outputs for the crops around ``boxes`` (image ``owner[k]`` for box k), and the crop matrices."""
        n, size = len(boxes), self.input_size
        crops = np.zeros((n, size, size, 3), np.uint8)
        matrices = np.zeros((n, 2, 3))
        for k, (i, box) in enumerate(zip(owner, boxes)):
            if self.resolver is not None and max(box[2] - box[0], box[3] - box[1]) < self.sr_threshold:
                crops[k], matrices[k] = sr_crop(images[i], box, self.crop_scale, size, self.resolver)
            else:
                crops[k], matrices[k] = crop_face(images[i], box, self.crop_scale, size)
        return self._predict(crops), matrices

    def _expression(self, images: list[np.ndarray], owner: list[int], out: dict[str, np.ndarray],
                    matrices: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """The expression model's probabilities (N, K) on its crops around the tight box of the
        predicted landmarks (the box a face is reported with), else around ``boxes``."""
        face_boxes = self._landmark_boxes(out, matrices, boxes)
        model = self.expression_model
        crops = np.stack([crop_face(images[i], box, model.crop_scale, model.input_size)[0]
                          for i, box in zip(owner, face_boxes)])
        return model.predict(crops)["expression"]

    def _landmark_boxes(self, out: dict[str, np.ndarray], matrices: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        """The tight boxes (image pixels) of the predicted landmarks, ``fallback`` where there are
        none or a box is not finite or under 1 px."""
        if "landmarks" not in out:
            return fallback
        boxes = landmark_box(self._landmarks(out["landmarks"], matrices))
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        ok = np.all(np.isfinite(boxes), axis=1) & (w >= 1) & (h >= 1)
        return np.where(ok[:, None], boxes, fallback)

    def _landmarks(self, normalised: np.ndarray, matrices: np.ndarray) -> np.ndarray:
        """Normalised crop coordinates (N, 68, 2) -> image pixels through the crop matrices."""
        return landmarks_to_image(normalised.astype(np.float64), matrices, self.input_size)

    def _decode(self, out: dict[str, np.ndarray], matrices: np.ndarray, boxes: np.ndarray,
                scores: np.ndarray) -> list[Face]:
        n = len(boxes)
        landmarks = self._landmarks(out["landmarks"], matrices) if "landmarks" in out else None
        rotation = out["rotation"].astype(np.float64) if "rotation" in out else None
        ypr = out["pose"].astype(np.float64) if "pose" in out else None
        if rotation is None and ypr is not None:
            rotation = euler_to_matrix(ypr)
        if ypr is None and rotation is not None:
            ypr = matrix_to_euler(rotation)
        faces = []
        for k in range(n):
            pose = None
            if rotation is not None:
                pose = Pose(matrix=rotation[k], yaw=float(ypr[k, 0]), pitch=float(ypr[k, 1]), roll=float(ypr[k, 2]),
                            uncertainty=out["pose_std"][k].astype(np.float64) if "pose_std" in out else None)
            expression = None
            if "expression" in out:
                probs = out["expression"][k].astype(np.float64)
                expression = Expression(label=self.expressions[int(np.argmax(probs))], probs=probs,
                                        names=self.expressions)
            faces.append(Face(
                box=landmark_box(landmarks[k]) if landmarks is not None else boxes[k].copy(),
                score=float(scores[k]),
                landmarks=None if landmarks is None else landmarks[k],
                visibility=out["visibility"][k].astype(np.float64) if "visibility" in out else None,
                pose=pose, expression=expression,
                flip_gap=float(out[FLIP_GAP][k]) if FLIP_GAP in out else None,
                presence=float(out[PRESENCE][k]) if PRESENCE in out else None))
        return faces

"""Face super-resolution at inference (no torch): small faces' crops upsampled by the exported generator.

:class:`SuperResolver` runs an ONNX generator of :mod:`facemtl.models.superres`
(``facemtl/assets/superres.onnx`` by default): a low-resolution crop of ``h x h`` becomes
``scale h x scale h``, then is resized to the landmark model's input size. :func:`sr_crop`
is the crop :class:`facemtl.infer.FaceAnalyzer` gives its model for a small face: the contract's
crop cut at the face's own resolution, then super-resolved, so it covers the same region as the
ordinary crop and keeps its matrix.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facemtl.contract import INPUT_NAME, crop_face, crop_matrix
from facemtl.infer.onnx_model import cpu_session
from facemtl.io import FileError

DEFAULT_SR_MODEL = Path(__file__).resolve().parents[1] / "assets" / "superres.onnx"
MIN_LR = 8  # smallest low-resolution crop handed to the generator


class SuperResolver:
    """An exported super-resolution generator. ``path``: its ONNX file (``None``: the shipped one).

    Attributes: ``scale`` (x4 or x8), ``lr_size`` (the low-resolution size it was trained on).
    """

    def __init__(self, path: str | Path | None = None, threads: int = 2):
        path = Path(DEFAULT_SR_MODEL if path is None else path)
        self.path = path
        self.session = cpu_session(path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.scale = int(meta["facemtl_sr_scale"])
            self.lr_size = int(meta.get("facemtl_sr_lr_size", "16"))
        except (KeyError, ValueError) as e:
            raise FileError(path, f"not a facemtl super-resolution model (metadata facemtl_sr_scale: {e})") from e

    def upscale(self, crop: np.ndarray) -> np.ndarray:
        """uint8 BGR (h, w, 3) -> uint8 BGR (scale h, scale w, 3)."""
        x = crop.transpose(2, 0, 1)[None].astype(np.float32)
        y = self.session.run(None, {INPUT_NAME: x})[0][0]
        return np.clip(np.rint(y), 0, 255).astype(np.uint8).transpose(1, 2, 0)

    def to_size(self, crop: np.ndarray, size: int) -> np.ndarray:
        """The low-resolution square ``crop`` super-resolved, then resized to ``size`` x ``size``
        (area averaging when the generator overshoots, bicubic when it falls short)."""
        up = self.upscale(crop)
        if up.shape[0] == size:
            return up
        mode = cv2.INTER_AREA if up.shape[0] > size else cv2.INTER_CUBIC
        return cv2.resize(up, (size, size), interpolation=mode)

    def low_res_size(self, side: float, size: int) -> int:
        """Side of the low-resolution crop for a crop region of ``side`` image pixels: the region's
        own resolution (no detail thrown away, none invented by resampling), between
        :data:`MIN_LR` and ``size``."""
        return int(np.clip(round(side), MIN_LR, max(MIN_LR, size)))


def sr_crop(image: np.ndarray, box: np.ndarray, crop_scale: float, size: int,
            resolver: SuperResolver) -> tuple[np.ndarray, np.ndarray]:
    """The contract crop of ``box`` (``size`` x ``size`` and its matrix, as
    :func:`facemtl.contract.crop_face`) made by super-resolving the crop at the face's own resolution."""
    side = crop_scale * max(box[2] - box[0], box[3] - box[1])
    low, _ = crop_face(image, box, crop_scale, resolver.low_res_size(side, size))
    return resolver.to_size(low, size), crop_matrix(np.asarray(box, dtype=np.float64), crop_scale, size)

"""``OnnxModel``: one facemtl ONNX file (``docs/model-format.md``) as a crop-batch predictor, no torch.

``OnnxModel(path)(crops)`` maps uint8 BGR crops (N, S, S, 3) to the contract outputs as numpy
arrays, so it is a :data:`facemtl.contract.Predict` and the model behind
:class:`facemtl.infer.FaceAnalyzer`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemtl.contract import EXPRESSIONS, INPUT_NAME, OUTPUTS, PRESENCE
from facemtl.io import FileError

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "assets" / "default.onnx"
# The dedicated expression network (docs/model-format.md, "The expression model"): when it is
# shipped, FaceAnalyzer and facemtl eval take the shipped models' expression from it.
DEFAULT_EXPRESSION_MODEL = Path(__file__).resolve().parents[1] / "assets" / "expression.onnx"

# The shipped model's limits on a detection (FaceAnalyzer's plausibility filter), chosen on the
# held-out real sets (300-W val, LFW val, their mosaics, the turned 300-W val faces) for model ee234078
# with flip averaging, the analyzer's default, by `python scripts/plausibility_filter.py --turned
# runs/300wlp18L/val` (docs/detector.md); re-choose them with that script when the model changes.
# First the face presence (facemtl.contract.PRESENCE): the largest multiple of 0.05 that keeps 99.5 % or
# more of the true faces of every set. Then, with it, the mean pose uncertainty (degrees): the smallest
# multiple of 0.5 that still does (14.5 for the earlier model 9b0b6a15, without the presence). Then,
# with both, the flip gap (facemtl.contract.FLIP_GAP: how far apart, in crop sides, the landmarks read
# on the crop and on its mirror image are): the smallest multiple of 0.005.
SHIPPED_MAX_UNCERTAINTY = 26.0
SHIPPED_MAX_FLIP_GAP = 0.095
SHIPPED_MIN_PRESENCE = 0.35


def is_shipped(main_model: str | Path | None) -> bool:
    """Whether ``main_model`` is a shipped model: ``None`` (the default) or a file in ``facemtl/assets/``."""
    return main_model is None or Path(main_model).resolve().parent == DEFAULT_MODEL.parent


def shipped_expression_model(main_model: str | Path | None) -> Path | None:
    """The shipped expression model that goes with ``main_model``: ``expression.onnx`` when it
    exists and the main model is a shipped one (:func:`is_shipped`), else ``None`` (another model
    is run with its own expression head unless told otherwise)."""
    if not DEFAULT_EXPRESSION_MODEL.is_file() or not is_shipped(main_model):
        return None
    return DEFAULT_EXPRESSION_MODEL


def combine_expressions(head: np.ndarray | None, model: np.ndarray) -> np.ndarray:
    """The reported expression probabilities (N, K): the mean of the dedicated expression model's
    and the main model's own head's where there is one (same class order). On the validation sets
    (model 9b0b6a15 flip-averaged with expression.onnx) the mean read faces-mux 62.8 % (mean recall
    43.9 %) against 60.0 % (36.8 %) for the expression model alone and 51.5 % for the head, and
    FER2013 60.0 % against 51.4 % and 60.3 % (docs/MODEL_CARD.md, "The expression model")."""
    return model if head is None else (head + model) / 2


# Whether a session's threads spin between the operators of a run (cpu_session). A process that
# shares the cores with others turns it off (facemtl.infer.batch's workers: spinning there took 9.0
# instead of 6.2 s for 2 workers of 2 threads on 2 cores).
SPIN_WITHIN_RUN = True


def cpu_session(path: Path, threads: int):
    """An onnxruntime CPU session on ``path`` with ``threads`` intra-op threads; :class:`FileError`
    for a missing or unloadable file."""
    import onnxruntime as ort

    if not path.is_file():
        raise FileError(path, "model file not found")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # The analyzer runs two or three sessions one after the other on the same cores: a session's
    # threads spinning after its run would steal them from the next one (a 640x480 frame took 46
    # ms instead of 22 with onnxruntime's default), so they stop at the end of each run; within a
    # run they spin between operators, which is faster than sleeping (2026-12-07, 2 threads: frame
    # 7 % and 250-px photo 11 % less than with no spinning at all; docs/BENCHMARKS.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if SPIN_WITHIN_RUN else "0")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        raise FileError(path, f"not a loadable ONNX model ({e})") from e


class OnnxModel:
    """An onnxruntime CPU session on a facemtl ONNX file, with the file's metadata.

    ``path``: the ONNX file; ``None`` loads the shipped ``facemtl/assets/default.onnx``.
    ``threads``: onnxruntime's intra-op threads. ``max_batch``: most crops per session call
    (a model exported with a fixed batch size takes exactly that many; shorter chunks are padded).

    Attributes: ``path``, ``name`` (``facemtl_model``), ``input_size`` (S), ``crop_scale``,
    ``expressions`` (class order), ``outputs`` (the contract outputs the file has),
    ``fixed_batch`` (the exported batch size, or ``None`` when dynamic), ``max_batch``, ``session``.
    """

    def __init__(self, path: str | Path | None = None, threads: int = 2, max_batch: int = 64):
        if path is None:
            if not DEFAULT_MODEL.is_file():
                raise FileError(DEFAULT_MODEL, "no default model is shipped yet; pass an ONNX file that "
                                                "follows docs/model-format.md")
            path = DEFAULT_MODEL
        path = Path(path)
        self.session = cpu_session(path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.input_size = int(meta["facemtl_input_size"])
            self.crop_scale = float(meta["facemtl_crop_scale"])
        except (KeyError, ValueError) as e:
            raise FileError(path, f"metadata facemtl_input_size / facemtl_crop_scale missing or invalid ({e})") from e
        self.path = path
        self.name = meta.get("facemtl_model", "")
        self.expressions = tuple(meta["facemtl_expressions"].split(",")) if meta.get(
            "facemtl_expressions") else EXPRESSIONS
        inputs = {i.name: i for i in self.session.get_inputs()}
        if INPUT_NAME not in inputs:
            raise FileError(path, f"no input named '{INPUT_NAME}' (inputs: {', '.join(inputs)})")
        batch_dim = inputs[INPUT_NAME].shape[0]
        self.fixed_batch = batch_dim if isinstance(batch_dim, int) else None
        self.max_batch = self.fixed_batch or max_batch
        self.outputs = [o.name for o in self.session.get_outputs() if o.name in OUTPUTS + (PRESENCE,)]
        if not self.outputs:
            raise FileError(path, f"none of the contract outputs {', '.join(OUTPUTS)}")

    def predict(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 BGR crops (N, S, S, 3), N >= 1 -> ``{output name: array with N rows}``."""
        s = self.input_size
        if crops.ndim != 4 or crops.shape[1:] != (s, s, 3) or len(crops) == 0:
            raise ValueError(f"{self.path}: expected crops of shape (N >= 1, {s}, {s}, 3), got {crops.shape}")
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.outputs}
        for start in range(0, len(crops), self.max_batch):
            chunk = crops[start:start + self.max_batch].transpose(0, 3, 1, 2).astype(np.float32)
            m = len(chunk)
            if self.fixed_batch is not None and m < self.fixed_batch:
                chunk = np.concatenate([chunk, np.zeros((self.fixed_batch - m,) + chunk.shape[1:], np.float32)])
            for name, value in zip(self.outputs, self.session.run(self.outputs, {INPUT_NAME: chunk})):
                parts[name].append(np.asarray(value)[:m])
        return {name: np.concatenate(v) for name, v in parts.items()}

    __call__ = predict

"""``facemtl export``: a training checkpoint -> the ONNX contract model, and optionally static int8.

    facemtl export --checkpoint runs/default/last.pt --onnx model.onnx
    facemtl export --checkpoint runs/default/last.pt --onnx model.onnx --int8 --calibration ../shared/data/lfw
    facemtl export --checkpoint runs/default/last.pt --onnx model.onnx --keep-weights checkpoints/default.pt

The fp32 model goes to ``--onnx`` (:func:`facemtl.models.export.export_onnx`, checked against
torch). ``--int8`` also writes ``<name>.int8.onnx`` beside it: onnxruntime static quantisation in
QDQ format, int8 weights per output channel, uint8 activations with ranges measured on
calibration crops of real unlabeled photos: the faces the analyzer's detector finds in
``--calibration`` (every image file below it), cut with the contract crop
(:func:`facemtl.contract.crop_face` around the detector's landmark-calibrated box, the
crop of the analyzer's first pass). See :func:`quantize_int8`.

Only the convolutional trunk (backbone and heatmap decoder, every node upstream of a Conv) is
quantised. The heads stay float: pooled-feature classifiers, soft-argmax, the landmark
refinement MLP and the decoding (bin softmax and expectation, 6D -> matrix, sigmoid, softmax)
cost a few thousand operations per face, and 8-bit steps on the soft-argmax and the decoding
moved the landmarks several times more than the trunk's quantisation does, for no speed gain.
The int8 file is compared with the fp32 one on held-out crops of the same photos, and the
agreement is printed; pose MAE on a labelled set comes from ``facemtl eval --model <name>.int8.onnx``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facemtl.io import IMAGE_SUFFIXES

if TYPE_CHECKING:
    import onnx



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, help="training checkpoint (runs/NAME/last.pt)")
    parser.add_argument("--onnx", required=True, type=Path, help="output fp32 ONNX file")
    parser.add_argument("--int8", action="store_true", help="also write a static int8 model <name>.int8.onnx")
    parser.add_argument("--calibration", type=Path, help="folder of real unlabeled face photos (with --int8)")
    parser.add_argument("--n-calibration", type=int, default=200, help="calibration crops (with --int8)")
    parser.add_argument("--n-check", type=int, default=50,
                        help="further crops on which int8 is compared with fp32 (with --int8)")
    parser.add_argument("--detector", default="opencv", help="face detector for the calibration photos")
    parser.add_argument("--flip-average", action="store_true",
                        help="expression model: average each crop with its mirror inside the graph")
    parser.add_argument("--fp16-weights", action="store_true",
                        help="store the fp32 file's weights as float16 (half the size; computes in float32)")
    parser.add_argument("--keep-weights", type=Path,
                        help="also write the model's torch weights here (float16, weights only: small enough to "
                             "commit, the init of a later fine-tune)")


def int8_path(path: Path) -> Path:
    """``model.onnx`` -> ``model.int8.onnx``."""
    return path.with_name(f"{path.stem}.int8{path.suffix}")


def photo_files(root: Path) -> list[Path]:
    """The image files below a calibration folder, sorted."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: calibration folder not found")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def face_crops(root: Path, size: int, crop_scale: float, n: int, detector: str = "opencv",
               seed: int = 0) -> np.ndarray:
    """Up to ``n`` uint8 BGR crops (n, size, size, 3) of the faces detected in the photos below ``root``.

    Photos are visited in a seeded random order (so a folder per identity, as LFW, gives many
    identities) until ``n`` faces are found; every face of a photo counts. Unreadable files
    are skipped.
    """
    from facemtl.contract import crop_face
    from facemtl.infer.detector import create_detector
    from facemtl.io import FileError, read_image

    files = photo_files(root)
    detect = create_detector(detector)
    crops: list[np.ndarray] = []
    for i in np.random.default_rng(seed).permutation(len(files)):
        if len(crops) >= n:
            break
        try:
            image = read_image(files[i])
        except FileError:
            continue
        boxes, _ = detect(image)
        crops += [crop_face(image, box, crop_scale, size)[0] for box in boxes[:n - len(crops)]]
    if not crops:
        raise ValueError(f"{root}: no face found in {len(files)} image files")
    return np.stack(crops)


def head_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes of an ONNX graph with no Conv downstream of them: the heads and the decoding."""
    producer = {out: node for node in model.graph.node for out in node.output}
    trunk: set[str] = set()
    stack = [node for node in model.graph.node if node.op_type == "Conv"]
    while stack:
        node = stack.pop()
        if node.name not in trunk:
            trunk.add(node.name)
            stack += [producer[i] for i in node.input if i in producer]
    return [node.name for node in model.graph.node if node.name not in trunk]


class _CropReader:
    """onnxruntime's calibration data reader (any object with ``get_next``) over uint8 crops, one
    crop per batch; ``set_range`` lets onnxruntime calibrate a chunk of crops at a time."""

    def __init__(self, crops: np.ndarray):
        self.crops = crops
        self.set_range(0, len(crops))

    def __len__(self) -> int:
        return len(self.crops)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.next, self.end = start_index, end_index

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.next >= self.end:
            return None
        self.next += 1
        return {"image": self.crops[self.next - 1:self.next].transpose(0, 3, 1, 2).astype(np.float32)}


def quantize_int8(fp32_path: Path, out_path: Path, crops: np.ndarray, percentile: float = 99.999,
                  chunk: int = 25) -> tuple[list[str], str]:
    """Static int8 of the convolutional trunk of a facemtl ONNX model, its heads left in float.
    Returns the names of the float nodes (:func:`head_nodes`) and how the activation ranges were set.

    The trunk, cut at the tensors the heads read, is quantised alone by onnxruntime: QDQ format,
    int8 weights per output channel, uint8 activations whose ranges clip the ``percentile`` of
    each activation's magnitudes over ``crops`` (histogram calibration on whole chunks of
    ``chunk`` crops, to bound memory). On partly trained default models this moved the pose and
    the landmarks about 20 % less than min-max ranges. Where a trunk tensor is too nearly
    constant for a histogram (an untrained model), min-max ranges are used instead. The head
    nodes are then appended unchanged, so they are never calibrated (a zero-initialised head
    would break the histograms too). The metadata of the fp32 file is kept, plus
    ``facemtl_quantization``. Written atomically.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    n = len(crops) - len(crops) % chunk if len(crops) >= chunk else len(crops)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        prepared, trunk, quantized = (os.path.join(tmp, f"{name}.onnx") for name in ("prepared", "trunk", "int8"))
        quant_pre_process(str(fp32_path), prepared)  # shape inference + graph clean-up, as onnxruntime advises
        model = onnx.load(prepared)
        float_nodes = head_nodes(model)
        floating = set(float_nodes)
        heads = [node for node in model.graph.node if node.name in floating]
        trunk_tensors = {out for node in model.graph.node if node.name not in floating for out in node.output}
        cut = sorted({i for node in heads for i in node.input if i in trunk_tensors})
        extracted = onnx.utils.Extractor(model).extract_model([i.name for i in model.graph.input], cut)
        extracted.metadata_props.extend(model.metadata_props)  # tells onnxruntime it is pre-processed
        onnx.save(extracted, trunk)
        def quantize(**options) -> None:
            with contextlib.redirect_stdout(io.StringIO()):  # onnxruntime prints its calibration progress
                quantize_static(trunk, quantized, _CropReader(crops[:n]), quant_format=QuantFormat.QDQ,
                                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                **options)

        try:
            quantize(calibrate_method=CalibrationMethod.Percentile,
                     extra_options={"CalibPercentile": percentile, "CalibStridedMinMax": min(chunk, n)})
            ranges = f"percentile {percentile:g} of |activation|"
        except ValueError as e:  # numpy: too many histogram bins for a (near-)constant tensor
            if "bins" not in str(e):
                raise
            quantize()
            ranges = "min-max"
        q = onnx.load(quantized)
        have = {i.name for i in q.graph.initializer}
        reads = {i for node in heads for i in node.input}
        q.graph.node.extend(heads)  # after the trunk: still in topological order
        q.graph.initializer.extend(i for i in model.graph.initializer if i.name in reads and i.name not in have)
        del q.graph.output[:]
        q.graph.output.extend(model.graph.output)
        meta = {p.key: p.value for p in onnx.load(str(fp32_path)).metadata_props}
        meta["facemtl_quantization"] = (f"int8 static QDQ, per-channel weights, float heads, {n} calibration crops, "
                                        f"{ranges} ranges")
        del q.metadata_props[:]
        for key, value in meta.items():
            q.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(q)
        onnx.save(q, quantized)
        os.replace(quantized, out_path)
    return float_nodes, ranges


def agreement(reference: dict[str, np.ndarray], other: dict[str, np.ndarray], size: int) -> dict[str, float]:
    """Mean and max absolute differences per output between two models' answers on the same crops:
    pose in degrees, landmarks in crop pixels, probabilities as they are."""
    result = {}
    for name, ref in reference.items():
        d = np.abs(other[name].astype(np.float64) - ref)
        if name == "landmarks":
            d = np.linalg.norm(d, axis=-1) * size
        result[f"{name}_mean"], result[f"{name}_max"] = float(d.mean()), float(d.max())
    return result


def run(args: argparse.Namespace) -> int:
    from facemtl.io import FileError
    from facemtl.train.checkpoint import load_trained

    if args.int8 and args.calibration is None:
        print("facemtl export: error: --int8 needs --calibration DIR (real unlabeled face photos)", file=sys.stderr)
        return 2
    if not args.checkpoint.is_file():
        print(f"facemtl export: error: {args.checkpoint}: checkpoint not found", file=sys.stderr)
        return 2
    try:
        if is_superres(args.checkpoint):
            return export_superres(args)
        model, cfg = load_trained(args.checkpoint)
        if cfg.model.startswith("mos_"):  # a face detector: its own outputs, no crop
            export_detector(args, model, cfg.model)
        else:
            export_crop_model(args, model, cfg)
        if getattr(args, "keep_weights", None):
            from facemtl.train.checkpoint import keep_weights

            keep_weights(args.checkpoint, args.keep_weights, model)  # as exported (calibration included)
            print(f"{args.keep_weights}: float16 weights, {args.keep_weights.stat().st_size / 1e6:.2f} MB")
    except (FileNotFoundError, ValueError, RuntimeError, FileError) as e:  # RuntimeError: the torch/ONNX check
        print(f"facemtl export: error: {e}", file=sys.stderr)
        return 2
    return 0


def export_detector(args: argparse.Namespace, model, name: str) -> None:
    """A MOS face detector: fp32 ONNX, and with ``--int8`` its static int8 twin, calibrated on
    letterboxed canvases of the ``--calibration`` photos and compared with fp32 on further ones."""
    from facemtl.models.export import export_detector_onnx

    export_detector_onnx(model, args.onnx, name=name)
    size = model.spec.input_size
    print(f"{args.onnx}: fp32 face detector, {args.onnx.stat().st_size / 1e6:.2f} MB ({name}, {size} px canvas)")
    if not args.int8:
        return
    from facemtl.infer.mos_detector import MosDetector
    from facemtl.metrics.detection import iou

    canvases = photo_canvases(args.calibration, size, args.n_calibration + args.n_check)
    calibration, check = canvases[:args.n_calibration], canvases[args.n_calibration:]
    out = int8_path(args.onnx)
    float_nodes, ranges = quantize_int8(args.onnx, out, calibration)
    print(f"{out}: int8, {out.stat().st_size / 1e6:.2f} MB, calibrated on {len(calibration)} canvases "
          f"of {args.calibration} ({ranges} ranges); {len(float_nodes)} decode nodes kept in float")
    if len(check):
        fp32, int8 = MosDetector(args.onnx, score=0.5), MosDetector(out, score=0.5)
        found = [(fp32.detect(c), int8.detect(c)) for c in check]
        ious = [iou(a["boxes"][:1], b["boxes"][:1])[0, 0] for a, b in found if len(a["boxes"]) and len(b["boxes"])]
        print(f"int8 vs fp32 on {len(check)} held-out canvases (score 0.5): {sum(len(a['boxes']) for a, _ in found)} "
              f"/ {sum(len(b['boxes']) for _, b in found)} faces, best faces' box IoU mean "
              f"{np.mean(ious) if ious else float('nan'):.3f}")


def photo_canvases(root: Path, size: int, n: int, seed: int = 0) -> np.ndarray:
    """Up to ``n`` uint8 BGR canvases (n, size, size, 3): photos below ``root`` in a seeded random
    order, letterboxed onto the square canvas the detector trained on (the run-time canvas is cut
    to each image and may be larger; activation ranges do not depend on the shape). Unreadable
    files are skipped."""
    from facemtl.geometry.anchors import letterbox
    from facemtl.io import FileError, read_image

    files = photo_files(root)
    canvases = []
    for i in np.random.default_rng(seed).permutation(len(files))[:n]:
        try:
            canvases.append(letterbox(read_image(files[i]), size)[0])
        except FileError:
            continue
    if not canvases:
        raise ValueError(f"{root}: no readable image among {len(files)} files")
    return np.stack(canvases)


def calibrate_pose_std(model, cfg) -> None:
    """Set the bin pose head's ``std_scale`` so that ``pose_std`` is the standard deviation of the
    pose error (:func:`facemtl.metrics.std_scale`) on the run's own held-out pose sets (its config's
    ``val``, aflw2000 never: it is reported only). Without a bin head or such a set, nothing.
    The error is that of the model as ``FaceAnalyzer`` and ``facemtl eval`` run it by default
    (:func:`facemtl.contract.model_reading`: flip-averaged, pose heads fused); one pass errs about 10 % more."""
    import torch

    from facemtl.contract import model_reading
    from facemtl.evaluate.protocol import predict_samples
    from facemtl.metrics import std_scale
    from facemtl.models.heads import BinPoseHead
    from facemtl.train.checkpoint import torch_predictor
    from facemtl.train.trainer import validation_sets

    head = next((m for m in model.modules() if isinstance(m, BinPoseHead)), None)
    if head is None:
        return
    sets = {k: [s for s in v if s.pose is not None] for k, v in validation_sets(cfg).items() if k != "aflw2000"}
    sets = {k: v for k, v in sets.items() if v}
    samples = [s for v in sets.values() for s in v]
    if not samples:
        print("pose_std: the bin spread, uncalibrated (no held-out pose set in the run's config)")
        return
    head.std_scale.fill_(1.0)
    out = predict_samples(model_reading(torch_predictor(model, torch.device("cpu"))), samples, cfg.input_size,
                          cfg.crop_scale)
    scale = std_scale(out["pose"], out["pose_std"], np.array([s.pose for s in samples]))
    if not np.all(np.isfinite(scale)):
        raise ValueError(f"pose_std calibration failed on {', '.join(sets)}: factors {scale}")
    head.std_scale.copy_(torch.from_numpy(scale))
    print(f"pose_std: bin spread x {np.round(scale, 4).tolist()} (yaw, pitch, roll), the error's standard "
          f"deviation on {len(samples)} held-out faces ({', '.join(sets)})")


def export_crop_model(args: argparse.Namespace, model, cfg) -> None:
    """A landmark/pose/expression model: the contract ONNX (``pose_std`` calibrated by
    :func:`calibrate_pose_std`), optionally float16 weights and int8."""
    from facemtl.models.export import export_onnx

    if getattr(args, "flip_average", False):
        if not hasattr(model, "flip_average"):
            raise ValueError(f"--flip-average: {cfg.model} has no flip averaging")
        model.flip_average = True
    calibrate_pose_std(model, cfg)  # on the model as exported (flip averaging included)
    export_onnx(model, args.onnx, cfg.input_size, cfg.crop_scale, name=cfg.model)
    if getattr(args, "fp16_weights", False):
        from facemtl.tools.weights_fp16 import halve_weights

        halve_weights(args.onnx, args.onnx)
        print(f"{args.onnx}: weights stored as float16 (computes in float32)")
    print(f"{args.onnx}: fp32, {args.onnx.stat().st_size / 1e6:.2f} MB ({cfg.model}, {cfg.input_size} px, "
          f"crop {cfg.crop_scale:g})")
    if args.int8:
        export_int8(args, cfg.input_size, cfg.crop_scale)


def is_superres(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` is a super-resolution run's (:mod:`facemtl.train.superres`)."""
    from facemtl.train.checkpoint import read_checkpoint
    from facemtl.train.superres import TASK

    return read_checkpoint(checkpoint)["config"].get("task") == TASK


def export_superres(args: argparse.Namespace) -> int:
    """The generator of a super-resolution checkpoint as ONNX (no int8: it is small and runs on few faces)."""
    from facemtl.models.export import export_generator
    from facemtl.train.superres import load_generator

    if args.int8:
        print("facemtl export: error: --int8 is for the landmark/pose models, not super-resolution", file=sys.stderr)
        return 2
    generator, cfg = load_generator(args.checkpoint)
    export_generator(generator, args.onnx, cfg.lr_size)
    print(f"{args.onnx}: fp32 super-resolution x{generator.scale}, {args.onnx.stat().st_size / 1e6:.2f} MB "
          f"(trained on {cfg.lr_size} px crops)")
    return 0


def export_int8(args: argparse.Namespace, size: int, crop_scale: float) -> None:
    """The int8 part of :func:`run`: calibrate, quantise, print the agreement with fp32."""
    from facemtl.infer.onnx_model import OnnxModel

    crops = face_crops(args.calibration, size, crop_scale, args.n_calibration + args.n_check, args.detector)
    out = int8_path(args.onnx)
    calibration, check = crops[:args.n_calibration], crops[args.n_calibration:]
    float_nodes, ranges = quantize_int8(args.onnx, out, calibration)
    print(f"{out}: int8, {out.stat().st_size / 1e6:.2f} MB, calibrated on {len(calibration)} face crops "
          f"of {args.calibration} ({ranges} ranges); {len(float_nodes)} head/decode nodes kept in float")
    if len(check):
        diff = agreement(OnnxModel(args.onnx).predict(check), OnnxModel(out).predict(check), size)
        units = {"pose": "deg", "landmarks": "px"}
        print(f"int8 vs fp32 on {len(check)} held-out crops (mean / max |difference|):")
        for name in [k[:-5] for k in diff if k.endswith("_mean")]:
            print(f"  {name:11s} {diff[f'{name}_mean']:.4f} / {diff[f'{name}_max']:.4f} {units.get(name, '')}")

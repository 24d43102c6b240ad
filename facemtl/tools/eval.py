"""``facemtl eval``: score a model on a labelled dataset with ground-truth boxes.

    facemtl eval --dataset aflw2000 --root ../shared/data/aflw2000-dev --json r.json

Each sample is cropped around its **ground-truth** face box (the tight box of its 68 landmarks),
as Hopenet scores AFLW2000, and the crop goes through :mod:`facemtl.evaluate.protocol`. Prints
the pose MAE per angle and its mean over the samples whose ground-truth angles are all within
±99° (Hopenet's filter: how many were used and dropped is printed), the mean signed error
(bias) per angle, landmark NME (inter-ocular and box-size normalised), visibility recall at 80 %
precision and expression accuracy, each where the dataset has those labels.

The crop margin is the model's own ``crop_scale`` (from the ONNX metadata or the checkpoint's
config): a square of side ``crop_scale · max(w, h)`` centred on the landmark box, the crop the
model was trained on. Hopenet's k = 0.2 grows the landmark box to 1.96 w × 1.568 h (0.4 h above,
0.168 h below) and its test transform keeps the centred square of side min(1.96 w, 1.568 h):
for a face box with w ≈ h, a square of ≈ 1.57 times the box side centred 0.12 h above the box
centre. facemtl's default ``crop_scale`` of 1.5 is that margin within 5 %, without the upward
shift; scoring each model on its training crop keeps models with other margins comparable.

``--model`` takes an ONNX file (onnxruntime, no torch) or a training checkpoint ``.pt`` (run
through torch); the default is the shipped ``facemtl/assets/default.onnx``.

Expression comes from the dedicated expression model, as in :class:`facemtl.infer.FaceAnalyzer`:
``--expression-model`` (an ONNX file or checkpoint; default ``auto``: the shipped
``facemtl/assets/expression.onnx`` when it exists and the main model is a shipped one, no
``--model`` or a file in ``facemtl/assets/``; ``none``: the main model's expression head) on its own crop around the same ground-truth
box, at its own size and ``crop_scale``. ``--confusion PNG`` plots the expression confusion matrix
(rows: true class, normalised to recall).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from facemtl.data.registry import DATASETS

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="dataset format (reader name)")
    parser.add_argument("--root", required=True, type=Path, help="dataset folder or file")
    parser.add_argument("--model", type=Path,
                        help="ONNX model or training checkpoint (.pt); default: the shipped default.onnx")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="reader option, e.g. split=test (repeatable; values parsed as JSON when they can be)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the model")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                        help="average the main model over each crop and its mirror image, as FaceAnalyzer does "
                             "by default (--no-flip: one pass)")
    parser.add_argument("--expression-model", default="auto",
                        help="expression model (ONNX or .pt), averaged with the main model's head as FaceAnalyzer "
                             "does: auto (default: the shipped expression.onnx with the shipped main model), none "
                             "(the main model's head alone) or a path")
    parser.add_argument("--confusion", type=Path, help="write the expression confusion-matrix plot (PNG) here")


def parse_options(items: list[str]) -> dict[str, Any]:
    """``["k=v", ...]`` -> ``{k: v}``, each value parsed as JSON (numbers, true/false) or kept as text."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {item!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def load_predictor(model: Path | None, threads: int) -> tuple[Any, dict[str, Any]]:
    """The protocol's ``predict`` for an ONNX file or a checkpoint, and the model's description
    (``model``, ``name``, ``input_size``, ``crop_scale``, ``backend``)."""
    if model is not None and model.suffix in CHECKPOINT_SUFFIXES:
        import torch

        from facemtl.train.checkpoint import load_trained, torch_predictor

        if not model.is_file():
            raise FileNotFoundError(f"{model}: checkpoint not found")
        torch.set_num_threads(threads)
        net, cfg = load_trained(model)
        info = {"model": str(model), "name": cfg.model, "input_size": cfg.input_size,
                "crop_scale": cfg.crop_scale, "backend": "torch"}
        return torch_predictor(net, torch.device("cpu")), info
    from facemtl.infer.onnx_model import DEFAULT_MODEL, OnnxModel
    from facemtl.io import FileError

    if model is None and not DEFAULT_MODEL.is_file():
        raise FileError(DEFAULT_MODEL, "no default model is shipped yet: pass --model PATH.onnx or a checkpoint .pt")
    onnx = OnnxModel(model, threads)
    info = {"model": str(onnx.path), "name": onnx.name, "input_size": onnx.input_size,
            "crop_scale": onnx.crop_scale, "backend": "onnxruntime"}
    return onnx.predict, info


def load_expression_predictor(choice: str, main_model: Path | None,
                              threads: int) -> tuple[Any, dict[str, Any]] | None:
    """The expression model's ``predict`` and description for ``--expression-model``, or ``None``."""
    from facemtl.infer.onnx_model import shipped_expression_model

    if choice == "none":
        return None
    if choice == "auto":
        shipped = shipped_expression_model(main_model)
        if shipped is None:
            return None
        choice = str(shipped)
    return load_predictor(Path(choice), threads)


def plot_confusion(matrix: Any, names: tuple[str, ...], title: str, path: Path) -> None:
    """Row-normalised confusion matrix (recall on the diagonal) with counts, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    present = matrix.sum(1) > 0
    rows = np.where(present[:, None], matrix / np.maximum(matrix.sum(1, keepdims=True), 1), np.nan)
    fig, ax = plt.subplots(figsize=(5.6, 4.8), dpi=110)
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            if present[i]:
                ax.text(j, i, f"{100 * rows[i, j]:.0f}\n({matrix[i, j]})", ha="center", va="center", fontsize=6.5,
                        color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), [f"{n} ({matrix[i].sum()})" for i, n in enumerate(names)])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (count)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def report(result: dict[str, Any]) -> str:
    """The human-readable summary of :func:`run`'s result."""
    lines = [f"{result['dataset']} ({result['root']}): {int(result['n'])} samples; model {result['model']} "
             f"({result['name']}, {result['input_size']} px, crop {result['crop_scale']:g}, {result['backend']}"
             f"{', flip-averaged' if result.get('flip') else ''})"]
    if "expression_model" in result:
        lines.append(f"expression from {result['expression_model']} ({result['expression_name']}, "
                     f"{result['expression_input_size']} px, crop {result['expression_crop_scale']:g})"
                     + (", averaged with the main model's head" if result.get("expression_with_head") else ""))
    if "mae_mean" in result:
        lines += [f"pose, ground truth within ±99°: {result['pose_n']} used, {result['pose_filtered']} filtered",
                  f"{'':14}{'yaw':>8}{'pitch':>8}{'roll':>8}{'mean':>8}",
                  f"{'MAE (deg)':14}" + "".join(f"{result[f'mae_{k}']:8.2f}" for k in ("yaw", "pitch", "roll", "mean")),
                  f"{'bias (deg)':14}" + "".join(f"{result[f'bias_{k}']:+8.2f}" for k in ("yaw", "pitch", "roll"))]
        for suffix, name in (("landmarks", "MAE, PnP"), ("fused", "MAE, fused")):
            if f"mae_mean_{suffix}" in result:
                lines.append(f"{name:14}" + "".join(f"{result[f'mae_{k}_{suffix}']:8.2f}"
                                                    for k in ("yaw", "pitch", "roll", "mean")))
        if "pitch_slope" in result:
            lines.append(f"pitch slope (predicted on true): {result['pitch_slope']:.2f}")
        if "n_yaw0_30" in result:
            lines.append(_by_yaw_line(result))
        if "std_coverage" in result:
            lines.append(f"uncertainty (pose_std): {100 * result['std_coverage']:.0f} % of errors within one std "
                         f"(68 % if calibrated), RMS error/std {result['std_z_rms']:.2f}, "
                         f"rank correlation with |error| {result['std_rank']:.2f}")
    if "nme_inter_ocular" in result:
        lines.append(f"landmark NME: {100 * result['nme_inter_ocular']:.2f} % inter-ocular, "
                     f"{100 * result['nme_bbox']:.2f} % box size"
                     + (f"; 51 inner points {100 * result['nme_inner51']:.2f} % inter-ocular"
                        if "nme_inner51" in result else ""))
    if "occlusion_recall_at_p80" in result:
        lines.append(f"hidden-landmark recall at 80 % precision: {100 * result['occlusion_recall_at_p80']:.1f} %")
    if "expression_accuracy" in result:
        lines.append(f"expression accuracy: {100 * result['expression_accuracy']:.1f} %, "
                     f"macro F1 {100 * result['expression_macro_f1']:.1f} %")
        recalls = [(k.removeprefix("expression_recall_"), v) for k, v in result.items()
                   if k.startswith("expression_recall_")]
        lines.append("recall per class: " + ", ".join(f"{name} {100 * v:.0f} %" for name, v in recalls))
    return "\n".join(lines)


def _by_yaw_line(result: dict[str, Any]) -> str:
    """``by |yaw| 0-30 / 30-60 / 60-99: n ...; MAE ...; yaw outward ...; box NME ...`` (a dash for an
    empty bin)."""
    from facemtl.evaluate.protocol import YAW_BINS

    keys = [f"yaw{lo}_{hi}" for lo, hi in YAW_BINS]
    fmt = lambda name, scale, unit: " / ".join(  # noqa: E731
        f"{scale * result[f'{name}_{k}']:.2f}" if f"{name}_{k}" in result else "-" for k in keys) + unit
    line = (f"by |yaw| {' / '.join(f'{lo}-{hi}' for lo, hi in YAW_BINS)}: n "
            + " / ".join(f"{int(result[f'n_{k}'])}" for k in keys) + "; MAE " + fmt("mae_mean", 1, "°")
            + "; yaw outward " + fmt("yaw_outward", 1, "°"))
    if any(f"nme_bbox_{k}" in result for k in keys):
        line += "; box NME " + fmt("nme_bbox", 100, " %")
    return line


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN: unavailable numbers (e.g. every sample filtered) become null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def run(args: argparse.Namespace) -> int:
    from facemtl.contract import model_reading
    from facemtl.data.registry import load_dataset
    from facemtl.infer.onnx_model import combine_expressions
    from facemtl.evaluate.protocol import predict_samples, score
    from facemtl.io import FileError, write_atomic

    try:
        options = parse_options(args.option)
        predict, info = load_predictor(args.model, args.threads)
        predict = model_reading(predict, args.flip)
        info["flip"] = args.flip
        try:
            samples = load_dataset(args.dataset, args.root, **options)
        except TypeError as e:  # an option the reader does not take
            raise ValueError(f"{args.dataset} reader: {e}") from e
        if not samples:
            raise FileError(args.root, f"no {args.dataset} samples found")
        expression = load_expression_predictor(args.expression_model, args.model, args.threads)
        outputs = predict_samples(predict, samples, info["input_size"], info["crop_scale"])
        if expression is not None:
            expr_predict, expr_info = expression
            own = predict_samples(expr_predict, samples, expr_info["input_size"], expr_info["crop_scale"])
            info["expression_with_head"] = "expression" in outputs
            outputs["expression"] = combine_expressions(outputs.get("expression"), own["expression"])
            info.update({f"expression_{k}" if k != "model" else "expression_model": v
                         for k, v in expr_info.items()})
        result = score(outputs, samples)
    except (FileError, FileNotFoundError, ValueError) as e:
        print(f"facemtl eval: error: {e}", file=sys.stderr)
        return 2
    result = {"dataset": args.dataset, "root": str(args.root), **info, **result}
    if "pose_n" in result:
        posed = sum(s.pose is not None for s in samples)
        result["pose_filtered"] = posed - result["pose_n"]
    print(report(result))
    labelled = [i for i, s in enumerate(samples) if s.expression is not None]
    if "expression" in outputs and labelled:
        import numpy as np

        from facemtl.contract import EXPRESSIONS
        from facemtl.metrics import confusion_matrix

        matrix = confusion_matrix(np.array([samples[i].expression for i in labelled]),
                                  outputs["expression"][labelled].argmax(1), len(EXPRESSIONS))
        result["expression_confusion"] = matrix.tolist()
        print("confusion (rows true, columns predicted: " + ", ".join(EXPRESSIONS) + "):")
        for name, row in zip(EXPRESSIONS, matrix):
            print(f"  {name:>9} " + " ".join(f"{v:5d}" for v in row))
        if args.confusion is not None:
            plot_confusion(matrix, EXPRESSIONS, f"{args.dataset}: accuracy {100 * result['expression_accuracy']:.1f} %",
                           args.confusion)
    if args.json is not None:
        text = json.dumps({k: _finite_or_none(v) for k, v in result.items()}, indent=2) + "\n"
        write_atomic(args.json, text.encode())
    return 0

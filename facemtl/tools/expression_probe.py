"""Expression probe: a softmax probe on a trained main model's pooled features, averaged into its expression output.

A study (tried 2026-12-07, not shipped: docs/MODEL_CARD.md, "An expression probe on the main model's
features"). The main model's expression head shares its features with pose and landmarks and was
trained on FER2013's grey faces mostly; a linear probe on the same pooled features, fitted with the
network frozen on the expression config's training sources in that config's proportions (FER2013
``train``, the faces-mux train part, 0.8 : 0.2, class weights ``(count / mean) ** -class_weight_power``),
read the labelled expression sets better than the head with the dedicated expression network, with one
model call a face fewer, but called neutral portraits fear.

What it writes: the same graph whose ``expression`` output is the mean of the head's probabilities
and the probe's (``softmax(pooled @ W + b)``); every other output is unchanged. The probe is fitted
on the mean of each crop's and its mirror image's features (flip averaging happens outside the
graph, on the outputs); the crops are the main model's protocol crops
(:func:`facemtl.evaluate.protocol.face_box` at its ``crop_scale``), as ``facemtl eval`` cuts them::

    python -m facemtl.tools.expression_probe --model facemtl/assets/default.onnx \\
        --also facemtl/assets/default.int8.onnx --out-dir runs/exprprobe

The config's validation sets are reported (head, probe, their mean), never fitted on.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from facemtl.contract import EXPRESSIONS
from facemtl.evaluate.protocol import protocol_crops
from facemtl.tools.presence import feature_reader, pooled_tensor, write_probed

# L2 penalty on standardised features (the loss is the weighted mean). On the validation sets (FER2013
# validation / faces-mux val, mean of head and probe, model ee234078): 1e-4 61.1 / 68.3 % (mean
# recall 47.5 %), 1e-3 61.7 / 66.7 % (55.7 %), 1e-2 a worse probe alone (57.8 / 67.0 % against
# 58.7 / 66.0 %): the middle one, the best mean recall.
PENALTY = 1e-3
STEPS, LEARNING_RATE = 400, 0.05  # full-batch Adam; the loss is flat by then


def fit_softmax(x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray, classes: int,
                penalty: float = PENALTY) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression of labels ``y`` (N,) on features ``x`` (N, C): the weighted mean
    cross-entropy plus ``penalty / 2 |W|^2`` on standardised features, full-batch Adam. The
    standardisation is folded into the returned ``(W (C, K), b (K,))`` of ``softmax(x @ W + b)``."""
    x = np.asarray(x, np.float64)
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    target = np.eye(classes)[y]
    w = sample_weight / sample_weight.sum()
    params = [np.zeros((z.shape[1], classes)), np.zeros(classes)]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    for t in range(1, STEPS + 1):
        grad_logits = (_softmax(z @ params[0] + params[1]) - target) * w[:, None]
        grads = [z.T @ grad_logits + penalty * params[0], grad_logits.sum(0)]
        for p, g, m in zip(params, grads, moments):
            m[0] = 0.9 * m[0] + 0.1 * g
            m[1] = 0.999 * m[1] + 0.001 * g ** 2
            p -= LEARNING_RATE * (m[0] / (1 - 0.9 ** t)) / (np.sqrt(m[1] / (1 - 0.999 ** t)) + 1e-8)
    W = params[0] / std[:, None]
    return W, params[1] - mean @ W


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def probe_probabilities(features: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The probe on features (..., C): what the added nodes give for one reading, (..., K)."""
    return _softmax(features.astype(np.float64) @ W + b)


def attach(model, W: np.ndarray, b: np.ndarray):
    """A copy of ``model`` (``onnx.ModelProto``) whose ``expression`` output is the mean of the head's
    probabilities and the probe's on the pooled features."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto.FromString(model.SerializeToString())
    producer = next((n for n in out.graph.node if "expression" in n.output), None)
    if producer is None:
        raise ValueError("the model has no 'expression' output")
    if any(n.name.startswith("expression_probe/") for n in out.graph.node):
        raise ValueError("the model already has an expression probe")
    producer.output[list(producer.output).index("expression")] = "expression_probe/head"
    out.graph.initializer.extend([
        numpy_helper.from_array(np.asarray(W, np.float32), "expression_probe.weight"),
        numpy_helper.from_array(np.asarray(b, np.float32), "expression_probe.bias"),
        numpy_helper.from_array(np.array(0.5, np.float32), "expression_probe.half"),
    ])
    out.graph.node.extend([
        helper.make_node("Gemm", [pooled_tensor(out), "expression_probe.weight", "expression_probe.bias"],
                         ["expression_probe/logits"], name="expression_probe/Gemm"),
        helper.make_node("Softmax", ["expression_probe/logits"], ["expression_probe/probs"], axis=-1,
                         name="expression_probe/Softmax"),
        helper.make_node("Add", ["expression_probe/head", "expression_probe/probs"], ["expression_probe/sum"],
                         name="expression_probe/Add"),
        helper.make_node("Mul", ["expression_probe/sum", "expression_probe.half"], ["expression"],
                         name="expression_probe/Mul"),
    ])
    onnx.checker.check_model(out)
    return out


def training_set(config: str, read, size: int, crop_scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (N, 2, C), labels (N,) and sample weights (N,) of the config's training sources: each
    source weighs its ``weight`` in all, each class ``(count / mean count) ** -class_weight_power``."""
    from facemtl.train.config import TrainConfig
    from facemtl.train.expression import class_weights, source_samples

    cfg = TrainConfig.load(config)
    features, labels, weights = [], [], []
    for spec in cfg.data:
        samples, _ = source_samples(spec, cfg)
        features.append(np.concatenate([read(protocol_crops(samples[i:i + 256], size, crop_scale))
                                        for i in range(0, len(samples), 256)]))
        labels.append(np.array([s.expression for s in samples]))
        weights.append(np.full(len(samples), spec.weight / len(samples)))
    y = np.concatenate(labels)
    power = float(cfg.loss_options.get("class_weight_power", 0.5))
    return np.concatenate(features), y, np.concatenate(weights) * class_weights(np.bincount(y, minlength=len(EXPRESSIONS)), power)[y]


def report(config: str, model_path: Path, read, W: np.ndarray, b: np.ndarray) -> None:
    """Accuracy and mean recall of the head, the probe and their mean on the config's validation sets,
    flip-averaged as ``FaceAnalyzer`` reads them."""
    from facemtl.contract import flip_averaged
    from facemtl.infer.onnx_model import OnnxModel
    from facemtl.train.config import TrainConfig
    from facemtl.train.expression import scores, validation_sets

    model = OnnxModel(model_path)
    sets = validation_sets(TrainConfig.load(config), model.input_size, model.crop_scale)
    for name, (crops, y) in sets.items():
        head = flip_averaged(model.predict)(crops)["expression"]
        probe = probe_probabilities(read(crops), W, b).mean(1)
        parts = [(kind, scores(y, p)) for kind, p in (("head", head), ("probe", probe), ("mean", (head + probe) / 2))]
        print(f"{name} ({len(y)}): " + ", ".join(f"{kind} {100 * s['accuracy']:.1f} % (mean recall "
                                                 f"{100 * s['mean_recall']:.1f} %)" for kind, s in parts))


def main(argv: list[str] | None = None) -> int:
    import onnx

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="the main model's ONNX file")
    ap.add_argument("--also", type=Path, nargs="*", default=[],
                    help="other files of the same network (e.g. its int8 file): they get the same probe")
    ap.add_argument("--config", default="expression", help="the expression training config (default: expression)")
    ap.add_argument("--out-dir", type=Path, required=True, help="the files are written here under their own names")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    for path in [args.model, *args.also]:
        if not path.is_file():
            ap.error(f"{path}: file not found")
    model = onnx.load(str(args.model))
    meta = {p.key: p.value for p in model.metadata_props}
    read = feature_reader(model, args.threads)
    start = time.perf_counter()
    x, y, weight = training_set(args.config, read, int(meta["facemtl_input_size"]), float(meta["facemtl_crop_scale"]))
    W, b = fit_softmax(x.mean(1), y, weight, len(EXPRESSIONS))
    fit = np.mean(probe_probabilities(x, W, b).mean(1).argmax(1) == y)
    print(f"probe on {len(y)} training faces in {time.perf_counter() - start:.0f} s (training accuracy {100 * fit:.1f} %)")
    report(args.config, args.model, read, W, b)
    write_probed([args.model, *args.also], args.out_dir, lambda m: attach(m, W, b))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Training of the dedicated expression network (:mod:`facemtl.models.expression`).

    facemtl train --config expression        # runs/expression/last.pt
    facemtl export --checkpoint runs/expression/last.pt --onnx runs/expression/expression.onnx --flip-average

``facemtl train`` comes here for a config whose ``model`` is an expression model
(:data:`EXPRESSION_MODELS`); the config is an ordinary :class:`~facemtl.train.config.TrainConfig`,
so ``facemtl export`` and ``facemtl eval --model runs/.../last.pt`` read its checkpoint as any other.

Data: every source is read once into memory as grey crops (the protocol's crop,
:func:`facemtl.evaluate.protocol.face_box` at the model's ``crop_scale``: for the tight face crops
of FER2013 and faces-mux, the whole image), at the source's own resolution (48 px for FER2013,
``input_size`` for image datasets). A batch draws each example from a source with the
probability of the source's ``weight``, then uniformly within it, and warps it to ``input_size``
with a random similarity (``augment``: ``flip``, ``rotate`` degrees, ``scale``, ``shift`` as a
fraction of the side) and a random ``brightness`` / ``contrast`` change.

Loss: cross-entropy with ``loss_options.label_smoothing`` and class weights
``(count_c / mean count) ** -class_weight_power`` over the training labels of all sources
(0: none, 1: fully balanced; 0.5 lifts disgust, 1.5 % of FER2013, about 2.6-fold over the
average class). AdamW, linear warm-up then cosine decay (:func:`facemtl.train.trainer.learning_rate`).

Validation (``val.datasets``: ``{name, dataset, root, options}`` like the main trainer's) runs at
the end and every ``epoch_steps``, on the protocol crops, with and without test-time flip
averaging; ``metrics.json`` and ``log.csv`` in the run folder hold the numbers. The checkpoint
``last.pt`` holds the config and the weights only (no optimiser state: a run is short and is
not resumed).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from facemtl.contract import EXPRESSIONS
from facemtl.data.sample import Sample
from facemtl.train.checkpoint import save_weights
from facemtl.train.log import CsvLog
from facemtl.train.config import DataSpec, TrainConfig

EXPRESSION_MODELS = ("expression_lite0",)
DEFAULT_AUGMENT = {"flip": 0.5, "rotate": 10.0, "scale": 0.1, "shift": 0.05, "brightness": 0.2, "contrast": 0.2}


def is_expression_config(cfg: TrainConfig) -> bool:
    return cfg.model in EXPRESSION_MODELS


def grey_crops(samples: Sequence[Sample], size: int, crop_scale: float) -> np.ndarray:
    """uint8 (N, size, size) grey protocol crops of ``samples``."""
    from facemtl.contract import crop_face
    from facemtl.data.transforms import face_box

    out = np.zeros((len(samples), size, size), np.uint8)
    for i, s in enumerate(samples):
        image = s.load_image()
        grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2GRAY)
        out[i] = crop_face(grey, face_box(s, image), crop_scale, size, cv2.INTER_AREA)[0]
    return out


def load_source(spec: DataSpec, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Grey crops (N, B, B) and expression labels (N,) of one training source."""
    samples, size = source_samples(spec, cfg)
    return grey_crops(samples, size, cfg.crop_scale), np.array([s.expression for s in samples], np.int64)


def source_samples(spec: DataSpec, cfg: TrainConfig) -> tuple[list[Sample], int]:
    """The samples with an expression label of one training source, and the side ``B`` its crops are
    read at (48 for FER2013's own 48 px images, else ``cfg.input_size``)."""
    if spec.type == "fer2013":
        from facemtl.data.fer2013 import read_fer2013

        samples = read_fer2013(spec.root, **{"split": "train", **spec.options})
        size = 48
    elif spec.type == "dataset":
        from facemtl.data.registry import load_dataset

        samples = load_dataset(spec.name, spec.root, **spec.options)
        size = cfg.input_size
    else:
        raise ValueError(f"expression training reads fer2013 or dataset sources, not {spec.type!r}")
    samples = [s for s in samples if s.expression is not None]
    if not samples:
        raise ValueError(f"{spec.name or spec.type} ({spec.root}): no expression labels")
    return samples, size


def class_weights(counts: np.ndarray, power: float) -> np.ndarray:
    """``(count_c / mean count) ** -power`` per class of :data:`EXPRESSIONS` (absent classes: 0)."""
    counts = np.asarray(counts, np.float64)
    weights = np.zeros_like(counts)
    present = counts > 0
    weights[present] = (counts[present] / counts[present].mean()) ** -power
    return weights


def augment_matrix(base: int, size: int, rng: np.random.Generator, aug: dict[str, float]) -> np.ndarray:
    """2x3 matrix from a (base x base) crop to the (size x size) input, with a random similarity."""
    c_in, c_out = (base - 1) / 2, (size - 1) / 2
    s = size / base * (1 + rng.uniform(-aug["scale"], aug["scale"]))
    a = math.radians(rng.uniform(-aug["rotate"], aug["rotate"]))
    flip = -1.0 if rng.random() < aug["flip"] else 1.0
    r = np.array([[s * math.cos(a) * flip, -s * math.sin(a)], [s * math.sin(a) * flip, s * math.cos(a)]])
    t = np.array([c_out, c_out]) + rng.uniform(-aug["shift"], aug["shift"], 2) * size - r @ np.array([c_in, c_in])
    return np.concatenate([r, t[:, None]], axis=1)


def make_batch(sources: list[tuple[np.ndarray, np.ndarray]], probs: np.ndarray, size: int, batch: int,
               rng: np.random.Generator, aug: dict[str, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch: BGR 0..255 float (batch, 3, size, size) (grey in all three) and labels."""
    x = np.zeros((batch, size, size), np.float32)
    y = np.zeros(batch, np.int64)
    which = rng.choice(len(sources), size=batch, p=probs)
    for k, src in enumerate(which):
        images, labels = sources[src]
        i = int(rng.integers(len(images)))
        m = augment_matrix(images.shape[1], size, rng, aug)
        im = cv2.warpAffine(images[i], m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        im = im.astype(np.float32)
        contrast = 1 + rng.uniform(-aug["contrast"], aug["contrast"])
        im = (im - im.mean()) * contrast + im.mean() * (1 + rng.uniform(-aug["brightness"], aug["brightness"]))
        x[k], y[k] = np.clip(im, 0, 255), labels[i]
    t = torch.from_numpy(x)[:, None].expand(-1, 3, -1, -1).contiguous()
    return t, torch.from_numpy(y)


def predict_logits(model: torch.nn.Module, crops: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Logits of uint8 BGR crops (N, S, S, 3), plain and of the mirrored crops."""
    plain, flipped = [], []
    with torch.no_grad():
        for start in range(0, len(crops), batch):
            x = torch.from_numpy(np.ascontiguousarray(crops[start:start + batch].transpose(0, 3, 1, 2))).float()
            plain.append(model.logits(x).numpy())
            flipped.append(model.logits(x.flip(3)).numpy())
    return np.concatenate(plain), np.concatenate(flipped)


def scores(labels: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    """Accuracy, mean recall over the classes present, recall per class, confusion matrix."""
    from facemtl.metrics import accuracy, confusion_matrix, macro_f1, precision_recall_f1

    pred = logits.argmax(1)
    per_class = precision_recall_f1(labels, pred, len(EXPRESSIONS))
    present = per_class["support"] > 0
    confusion = confusion_matrix(labels, pred, len(EXPRESSIONS))
    return {"accuracy": accuracy(labels, pred), "macro_f1": macro_f1(labels, pred, len(EXPRESSIONS)),
            "mean_recall": float(np.mean(per_class["recall"][present])),
            "recall": {n: float(r) for n, r, p in zip(EXPRESSIONS, per_class["recall"], present) if p},
            "confusion": confusion.tolist()}


def validation_sets(cfg: TrainConfig, size: int | None = None,
                    crop_scale: float | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``name -> (uint8 BGR protocol crops (N, S, S, 3), labels)`` of ``cfg.val["datasets"]``, at
    ``size`` and ``crop_scale`` (default the config's: another model may read the same faces)."""
    from facemtl.data.registry import load_dataset
    from facemtl.evaluate.protocol import protocol_crops

    sets = {}
    for spec in cfg.val.get("datasets", []):
        samples = [s for s in load_dataset(spec["dataset"], spec["root"], **spec.get("options", {}))
                   if s.expression is not None]
        crops = protocol_crops(samples, size or cfg.input_size, crop_scale or cfg.crop_scale)
        sets[spec["name"]] = (crops, np.array([s.expression for s in samples], np.int64))
    return sets


def validate(model: torch.nn.Module, sets: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    was_training = model.training
    model.eval()
    result = {}
    for name, (crops, labels) in sets.items():
        t = time.perf_counter()
        plain, flipped = predict_logits(model, crops)
        result[name] = {"plain": scores(labels, plain), "flip": scores(labels, (plain + flipped) / 2),
                        "n": int(len(labels)), "seconds_both": time.perf_counter() - t}
    model.train(was_training)
    return result


def _summary(step: int, val: dict[str, Any]) -> str:
    parts = []
    for name, r in val.items():
        p, f = r["plain"], r["flip"]
        parts.append(f"{name} acc {100 * p['accuracy']:.1f} (flip {100 * f['accuracy']:.1f}) "
                     f"mean recall {100 * p['mean_recall']:.1f} (flip {100 * f['mean_recall']:.1f}) ["
                     + " ".join(f"{n[:3]} {100 * v:.0f}" for n, v in p["recall"].items()) + "]")
    return f"step {step}: " + "; ".join(parts)


def _training_data(cfg: TrainConfig) -> tuple[list, np.ndarray, np.ndarray]:
    """``cfg``'s training sources (crops, labels), their sampling shares and the loss's class weights,
    which weigh each source's labels by its share of the batches (printed with the faces' count)."""
    t0 = time.perf_counter()
    sources = [load_source(spec, cfg) for spec in cfg.data]
    probs = np.array([spec.weight for spec in cfg.data], np.float64)
    probs /= probs.sum()
    seen = np.zeros(len(EXPRESSIONS))
    for (_, lab), p in zip(sources, probs):
        seen += p * np.bincount(lab, minlength=len(EXPRESSIONS)) / len(lab)
    weights = class_weights(seen, float(cfg.loss_options.get("class_weight_power", 0.5)))
    print(f"expression: {sum(len(lab) for _, lab in sources)} training faces from {len(sources)} sources, class "
          "weights " + " ".join(f"{n} {w:.2f}" for n, w in zip(EXPRESSIONS, weights))
          + f"; data ready in {time.perf_counter() - t0:.0f} s", flush=True)
    return sources, probs, weights


def train(cfg: TrainConfig, out: str | Path, resume: bool = False, device: str | None = None,
          stop_at: int | None = None) -> Path:
    """Train ``cfg`` (an expression model) into ``out`` in one go, on the CPU; returns ``out/last.pt``.

    It keeps no resumable checkpoint: ``resume`` and ``stop_at`` raise :class:`UnsupportedOption`."""
    from facemtl.models import create_model
    from facemtl.train.config import UnsupportedOption, cpu_only
    from facemtl.train.trainer import learning_rate

    if resume or stop_at is not None:
        raise UnsupportedOption(f"{cfg.name}: the expression trainer runs in one go (it keeps no resumable "
                                "checkpoint); --resume and --stop-at are not supported there")
    cpu_only(cfg.name, device)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cv2.setNumThreads(1)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    aug = {**DEFAULT_AUGMENT, **cfg.augment}
    sources, probs, weights = _training_data(cfg)
    smoothing = float(cfg.loss_options.get("label_smoothing", 0.1))
    val_sets = validation_sets(cfg)

    model = create_model(cfg.model, **cfg.model_options)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    loss_weights = torch.tensor(weights, dtype=torch.float32)
    log = CsvLog(out / "log.csv")
    t_train, running = time.perf_counter(), []
    history = []
    for step in range(cfg.steps):
        lr = learning_rate(cfg, step)
        for group in optimiser.param_groups:
            group["lr"] = lr
        x, y = make_batch(sources, probs, cfg.input_size, cfg.batch_size, rng, aug)
        logits = model(x)["expression_logits"]
        loss = F.cross_entropy(logits, y, weight=loss_weights, label_smoothing=smoothing)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        running.append(loss.item())
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            elapsed = time.perf_counter() - t_train
            row = {"step": done, "loss": float(np.mean(running)), "lr": lr, "seconds": round(elapsed, 1),
                   "images_per_s": round(done * cfg.batch_size / elapsed, 1)}
            running = []
            log.write(row)
            print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
        if val_sets and (done % cfg.epoch_steps == 0 or done == cfg.steps):
            val = validate(model, val_sets)
            history.append({"step": done, "seconds": round(time.perf_counter() - t_train, 1), "val": val})
            print(_summary(done, val), flush=True)
    train_seconds = time.perf_counter() - t_train
    path = out / "last.pt"
    save_weights(path, model, cfg.steps, cfg)
    metrics = {"steps": cfg.steps, "train_seconds": round(train_seconds, 1), "class_weights": weights.tolist(),
               "history": history}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(f"expression: {cfg.steps} steps in {train_seconds / 60:.1f} min -> {path}", file=sys.stderr)
    return path

"""Face presence: the probability that a crop holds a face, added to a trained main model's ONNX file.

Why: the detector boxes lettering, torsos and jackets (1080p street clip, docs/detector.md), and the
main model reads them with a pose uncertainty and a flip gap that real faces looking down or blurred
also have, so the plausibility filter cannot drop them without dropping faces. The network's pooled
features (the tensor its pose, visibility and expression heads read) do tell them apart: a logistic
probe on them, fitted with the network frozen, is what this tool adds (MediaPipe's face mesh reports
a face-presence score for the same use).

What it writes: the same graph with one more output, :data:`facemtl.contract.PRESENCE` (N,), the
probe's sigmoid; every other node and weight is untouched, so every other output is the same.

Data (dlib's VOC photos, aflw2000-dev, ``photos/`` and the videos are never used): faces are crops
around the annotated landmark box, jittered, of the 300-W training photos, LFW's training identities
and the turned 300-W training views; non-faces are the regions of the same photos below the face
(necks, chests, jackets) and away from it, and the shipped detector's boxes on face-free canvases with
lettering, logos and dot flowers (:func:`facemtl.train.detection.data.clutter`). Half of both are
degraded (blur, motion blur, low resolution, noise, JPEG, exposure), so image quality is no cue. The
same kinds from the held-out parts (300-W val, LFW val, the turned val views) are reported::

    python -m facemtl.tools.presence --model facemtl/assets/default.onnx \\
        --also facemtl/assets/default.int8.onnx --turned runs/300wlp18s --out-dir runs/presence

The analyzer's limit (``FaceAnalyzer(min_presence=)``) is chosen afterwards on held-out faces by
``scripts/plausibility_filter.py``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from facemtl.contract import INPUT_NAME, PRESENCE, crop_face, landmark_box
from facemtl.data.degrade import Degradation, degrade
from facemtl.data.registry import load_dataset
from facemtl.data.sample import Sample
from facemtl.data.transforms import Augment
from facemtl.io import shared_dir
from facemtl.metrics.detection import iou

# The pose head reads the pooled features; the probe reads the same tensor.
POSE_HEAD = "/model/pose_head/fc/Gemm"
# L2 penalty of the probe (on standardised features; the loss is the class-balanced mean). 1e-3 and
# 1e-2 read the held-out sets alike (the worst set: 95.9 % right, all crops degraded), 3e-2 and up
# worse (one-off sweep, 2026-12-07): the smaller weights.
PENALTY = 1e-2


def pooled_tensor(model) -> str:
    """The name of the pooled feature tensor of an exported main model (``onnx.ModelProto``)."""
    for node in model.graph.node:
        if node.name == POSE_HEAD:
            return node.input[0]
    raise ValueError(f"no node {POSE_HEAD!r}: not a facemtl main model with a pose head (facemtl export)")


def feature_reader(model, threads: int = 2) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 BGR crops (N, S, S, 3) -> pooled features (N, 2, C) of each crop and of its mirror image."""
    import onnx
    import onnxruntime as ort

    model = onnx.ModelProto.FromString(model.SerializeToString())
    name = pooled_tensor(model)
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def read(crops: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(crops), 64):
            c = crops[start:start + 64]
            x = np.concatenate([c, c[:, :, ::-1]]).transpose(0, 3, 1, 2).astype(np.float32)
            f = session.run([name], {INPUT_NAME: x})[0].reshape(len(x), -1)
            out.append(np.stack([f[:len(c)], f[len(c):]], 1))
        return np.concatenate(out)
    return read


def fit_probe(faces: np.ndarray, others: np.ndarray, penalty: float = PENALTY,
              steps: int = 30) -> tuple[np.ndarray, float]:
    """Logistic regression, faces (N, C) against others (M, C), each class weighted to half;
    Newton's method on standardised features, the standardisation folded into the returned
    ``(weights (C,), bias)`` of ``sigmoid(x @ weights + bias)``."""
    x = np.concatenate([faces, others]).astype(np.float64)
    y = np.r_[np.ones(len(faces)), np.zeros(len(others))]
    sample_weight = np.where(y == 1, 0.5 / len(faces), 0.5 / len(others))
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = np.c_[(x - mean) / std, np.ones(len(x))]
    theta = np.zeros(z.shape[1])
    ridge = np.full(z.shape[1], penalty)
    ridge[-1] = 0.0  # the bias is not penalised
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(z @ theta, -30, 30)))
        grad = z.T @ (sample_weight * (p - y)) + ridge * theta
        hess = (z * (sample_weight * p * (1 - p))[:, None]).T @ z + np.diag(ridge)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = theta[:-1] / std
    return weights, float(theta[-1] - mean @ weights)


def probability(features: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    """The probe on features (..., C): what the added output gives for one reading."""
    return 1 / (1 + np.exp(-(features @ weights + bias)))


def attach(model, weights: np.ndarray, bias: float):
    """A copy of ``model`` (``onnx.ModelProto``) with the output :data:`PRESENCE` (N,) added."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = onnx.ModelProto.FromString(model.SerializeToString())
    if any(o.name == PRESENCE for o in out.graph.output):
        raise ValueError(f"the model already has an output {PRESENCE!r}")
    pooled = pooled_tensor(out)
    out.graph.initializer.extend([
        numpy_helper.from_array(np.asarray(weights, np.float32).reshape(-1, 1), "presence.weight"),
        numpy_helper.from_array(np.array([bias], np.float32), "presence.bias"),
        numpy_helper.from_array(np.array([-1], np.int64), "presence.shape"),
    ])
    out.graph.node.extend([
        helper.make_node("Gemm", [pooled, "presence.weight", "presence.bias"], ["presence/logit"],
                         name="presence/Gemm"),
        helper.make_node("Sigmoid", ["presence/logit"], ["presence/prob"], name="presence/Sigmoid"),
        helper.make_node("Reshape", ["presence/prob", "presence.shape"], [PRESENCE], name="presence/Reshape"),
    ])
    out.graph.output.append(helper.make_tensor_value_info(PRESENCE, TensorProto.FLOAT, ["N"]))
    onnx.checker.check_model(out)
    return out


# ---- the crops -----------------------------------------------------------------------------------

def _jittered(box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The box moved and scaled as far as the detector's box may lie from the landmarks' own: on
    faces looking down it is up to a third larger (the 1080p street clip, docs/detector.md)."""
    c, s = (box[:2] + box[2:]) / 2, box[2:] - box[:2]
    c = c + rng.normal(0, 0.06, 2) * s
    s = s * np.exp(rng.uniform(np.log(0.85), np.log(1.45)))
    return np.r_[c - s / 2, c + s / 2]


def _below(box: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray | None:
    """A box of about the face's size on the neck, chest or shoulder below it (None off the image)."""
    side = (box[2:] - box[:2]).max() * rng.uniform(0.9, 1.6)
    c = (box[:2] + box[2:]) / 2 + np.array([rng.uniform(-0.6, 0.6), rng.uniform(0.8, 2.0)]) * side
    return None if c[1] > shape[0] - 0.15 * side else np.r_[c - side / 2, c + side / 2]


def _away(box: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray | None:
    """A box anywhere on the image that does not overlap the face."""
    side = (box[2:] - box[:2]).max() * rng.uniform(0.6, 1.8)
    for _ in range(20):
        c = rng.uniform([0, 0], [shape[1], shape[0]])
        r = np.r_[c - side / 2, c + side / 2]
        if iou(r[None], box[None])[0, 0] < 0.05:
            return r
    return None


def _motion_blur(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(3, 12))
    kernel = np.zeros((n, n), np.float32)
    kernel[n // 2] = 1
    turn = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), rng.uniform(0, 180), 1)
    kernel = cv2.warpAffine(kernel, turn, (n, n))
    return cv2.filter2D(crop, -1, kernel / kernel.sum())


def degraded(crop: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """With probability ``p`` ``crop`` blurred, smaller, noisier, compressed or lit differently, else as is."""
    if rng.random() >= p:
        return crop
    size = crop.shape[0]
    if rng.random() < 0.3:
        crop = _motion_blur(crop, rng)
    if rng.random() < 0.5:
        small = degrade(crop, int(rng.integers(14, 56)), rng, Degradation(blur=0.5, blur_sigma=(0.3, 1.5)))
        crop = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    return Augment(low_res=0.0, blur=0.3, color=0.4).photometric(crop, rng)


def photo_crops(samples: Sequence[Sample], rng: np.random.Generator, size: int, crop_scale: float,
                clean: bool = False) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Faces and non-faces of photos with landmarks: one face crop (around the landmark box, moved
    and scaled as a detector's box may be), a region below the face and one away from it per photo.
    ``clean``: inpaint LFW's drawn-in annotation first."""
    from facemtl.synth.texture import remove_overlay

    faces, others = [], []
    for s in samples:
        image = s.load_image()
        image = remove_overlay(image) if clean else image
        box = landmark_box(s.landmarks)
        faces.append(degraded(crop_face(image, _jittered(box, rng), crop_scale, size)[0], rng))
        for region in (_below(box, image.shape, rng), _away(box, image.shape, rng)):
            if region is not None:
                others.append(degraded(crop_face(image, region, crop_scale, size)[0], rng))
    return faces, others


def clutter_crops(n: int, rng: np.random.Generator, size: int, crop_scale: float, detector) -> list[np.ndarray]:
    """The ``detector``'s boxes on ``n`` face-free canvases with distractors."""
    from facemtl.train.detection.data import background, clutter

    out = []
    for _ in range(n):
        canvas = clutter(background(rng, 320), rng, int(rng.integers(2, 6)))
        for box in detector(canvas)[0]:
            out.append(degraded(crop_face(canvas, box, crop_scale, size)[0], rng))
    return out


def crop_sets(shared: Path, turned: Path, part: str, rng: np.random.Generator, size: int, crop_scale: float,
              n_turned: int, n_lfw: int, n_clutter: int) -> dict[str, tuple[list, list]]:
    """``{source: (faces, others)}`` of ``part`` ("train" or "val"; see the module docstring). The
    shipped detector finds the distractors at a threshold of 0.3."""
    from facemtl.infer.detector import create_detector
    from facemtl.train.detection.data import lfw_faces

    detector = create_detector("mos", score=0.3)
    data = shared / "data"
    w300 = list(load_dataset("300w", data / "300w" / "helen-train", holdout=part))
    if part == "train":
        w300 += list(load_dataset("300w", data / "300w" / "afw"))
    views = list(load_dataset("synth", turned / part))
    views = [views[i] for i in np.sort(rng.choice(len(views), min(n_turned, len(views)), replace=False))]
    lfw = lfw_faces(data / "lfw", part)
    lfw = [lfw[i] for i in np.sort(rng.choice(len(lfw), min(n_lfw, len(lfw)), replace=False))]
    sets = {"300-W": photo_crops([s for s in w300 if s.landmarks is not None], rng, size, crop_scale),
            "LFW": photo_crops(lfw, rng, size, crop_scale, clean=True),
            "turned 300-W": photo_crops(views, rng, size, crop_scale)}
    sets["distractors"] = ([], clutter_crops(n_clutter, rng, size, crop_scale, detector))
    return sets


# ---- the command ---------------------------------------------------------------------------------

def _count(features: np.ndarray | None) -> int:
    return 0 if features is None else len(features)


def _above(features: np.ndarray | None, weights: np.ndarray, bias: float) -> str:
    """The % of crops whose presence (the mean of the crop's and its mirror's) is at least 0.1, 0.3, 0.5."""
    if features is None:
        return "-"
    p = probability(features, weights, bias).mean(1)
    return " ".join(f"{(p >= t).mean() * 100:.1f}" for t in (0.1, 0.3, 0.5))


def main(argv: list[str] | None = None) -> int:
    import onnx

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="the main model's ONNX file (facemtl export)")
    ap.add_argument("--also", type=Path, nargs="*", default=[],
                    help="other files of the same network (e.g. its int8 file): they get the same probe")
    ap.add_argument("--turned", type=Path, required=True, help="a facemtl profile folder (train/ and val/)")
    ap.add_argument("--shared", type=Path, default=None, help="default: FACEMTL_SHARED or ../shared")
    ap.add_argument("--out-dir", type=Path, required=True, help="the files are written here under their own names")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    shared = args.shared or shared_dir()
    for path in [args.model, *args.also]:
        if not path.is_file():
            ap.error(f"{path}: file not found")
    for part in ("train", "val"):
        if not (args.turned / part).is_dir():
            ap.error(f"{args.turned / part}: not found (make it with facemtl profile ... --out {args.turned})")
    model = onnx.load(str(args.model))
    meta = {p.key: p.value for p in model.metadata_props}
    size, crop_scale = int(meta["facemtl_input_size"]), float(meta["facemtl_crop_scale"])
    read = feature_reader(model, args.threads)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    parts = {"train": crop_sets(shared, args.turned, "train", rng, size, crop_scale, 1500, 800, 500),
             "val": crop_sets(shared, args.turned, "val", rng, size, crop_scale, 1000, 300, 150)}
    feats = {part: {name: tuple(read(np.stack(c)) if c else None for c in pair) for name, pair in sets.items()}
             for part, sets in parts.items()}
    print(f"crops and features in {time.perf_counter() - start:.0f} s")
    train = feats["train"]
    faces = np.concatenate([f.reshape(-1, f.shape[-1]) for f, _ in train.values() if f is not None])
    others = np.concatenate([o.reshape(-1, o.shape[-1]) for _, o in train.values() if o is not None])
    weights, bias = fit_probe(faces, others)
    print(f"probe on {len(faces)} face and {len(others)} non-face readings (crop and mirror each)")
    for part, sets in feats.items():
        for name, (f, o) in sets.items():
            print(f"{part:5s} {name:13s} faces {_count(f):5d} kept % at 0.1/0.3/0.5: {_above(f, weights, bias):17s} "
                  f"non-faces {_count(o):5d} passed %: {_above(o, weights, bias)}")
    write_probed([args.model, *args.also], args.out_dir, lambda m: attach(m, weights, bias))
    return 0


def write_probed(paths: Sequence[Path], out_dir: Path, add: Callable) -> None:
    """Each ONNX file of ``paths`` with ``add(model)`` applied, written to ``out_dir`` under its own name."""
    import onnx

    out_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        target = out_dir / path.name
        onnx.save(add(onnx.load(str(path))), str(target))
        print(f"wrote {target}")


if __name__ == "__main__":
    raise SystemExit(main())

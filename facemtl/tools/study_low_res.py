"""``facemtl study low-res``: pose error on low-resolution faces (Hopenet Fig. 8).

Every evaluation image is downsampled ×1, ×5, ×10, ×15 with nearest-neighbour sampling and
upsampled back to its size the same way (Hopenet degrades its AFLW2000 crops so; here the whole
image, which on AFLW2000's 450 px images is about the crop), then cropped and scored with the
protocol. Two ways to the pose for each model:

* ``network``: the model's own pose output;
* ``landmarks + PnP``: :func:`facemtl.geometry.pnp.landmarks_to_pose` (all 68 points, the mean
  face, focal length = image width) on the model's predicted landmarks (models with landmarks);
  faces where PnP fails are counted and left out of its MAE.

And, for scale, PnP on the ground-truth landmarks of the undegraded images.

The models: by default the base config (``facemtl/configs/study_low_res.yaml``: the default model's
architecture and augmentation, synthetic faces) trained twice, with its low-resolution
augmentation (``low_res_aug``) and without it (``no_low_res_aug``: ``augment.low_res = 0``);
or existing checkpoints: ``--checkpoints a.pt b.pt`` (nothing is trained then).

    facemtl study low-res [--config study_low_res] [--steps N] [--checkpoints A.pt B.pt]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facemtl.data.sample import Sample
from facemtl.tools import studies

STUDY = "low-res"
FACTORS = (1, 5, 10, 15)
VARIANTS: dict[str, dict[str, Any]] = {
    "low_res_aug": {},
    "no_low_res_aug": {"augment": {"low_res": 0.0}},
}
AXES = ("yaw", "pitch", "roll", "mean")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    studies.add_arguments(parser, STUDY, list(VARIANTS))
    parser.add_argument("--checkpoints", nargs="+", type=Path,
                        help="score these training checkpoints instead of training the variants")
    parser.add_argument("--factors", default=",".join(map(str, FACTORS)),
                        help="comma-separated downsampling factors (default 1,5,10,15)")


def pixelate(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` shrunk ``factor`` times and enlarged back to its size, both nearest-neighbour
    (Hopenet's low-resolution protocol; :func:`facemtl.data.degrade.downsample` only shrinks)."""
    import cv2

    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def degraded(samples: Sequence[Sample], factor: int) -> list[Sample]:
    """The samples with their images passed through :func:`pixelate` (labels unchanged)."""
    return [replace(s, image=pixelate(s.load_image(), factor)) for s in samples]


def pnp_score(landmarks: np.ndarray, samples: Sequence[Sample]) -> dict[str, float]:
    """MAE and bias of the PnP pose from ``landmarks`` (N, 68, 2, image pixels) against the samples'
    poses (±99° filter); ``n_failed``: faces where PnP found no pose (left out)."""
    from facemtl.geometry.pnp import mean_face
    from facemtl.metrics import mean_signed_error, pose_mae
    from facemtl.tools.landmark_to_pose import poses_from_landmarks

    sizes = np.array([s.load_image().shape[1::-1] for s in samples], dtype=np.float64)
    pred = poses_from_landmarks(np.asarray(landmarks, dtype=np.float64), sizes, "68", mean_face())
    gt = np.stack([s.pose for s in samples])
    ok = np.isfinite(pred).all(axis=1)
    if not ok.any():
        return {f"mae_{k}": float("nan") for k in AXES} | {"pose_n": 0, "n_failed": len(ok)}
    mae, bias = pose_mae(pred[ok], gt[ok]), mean_signed_error(pred[ok], gt[ok])
    return ({f"mae_{k}": mae[k] for k in AXES} | {f"bias_{k}": bias[k] for k in AXES[:3]}
            | {"pose_n": mae["n"], "n_failed": int((~ok).sum())})


def _models(args: argparse.Namespace, base) -> list[tuple[str, Any, Any, str]]:
    """``(name, model, config, where)`` of the checkpoints given, else of the trained variants."""
    if not args.checkpoints:
        return [(name, model, cfg, str(args.runs_dir / name))
                for name, _, cfg, model in studies.trained_variants(args, base,
                                                                    studies.select_variants(VARIANTS, args.variants))]
    from facemtl.train.checkpoint import load_trained

    out = []
    for path in args.checkpoints:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: checkpoint not found")
        model, cfg = load_trained(path)
        name = path.parent.name if path.name == "last.pt" else path.stem
        while name in [o[0] for o in out]:
            name += "'"
        out.append((name, model.to(studies._device(args.device)), cfg, str(path)))
    return out


def run_study(args: argparse.Namespace) -> dict[str, Any]:
    from facemtl.evaluate.protocol import predict_samples, score
    from facemtl.train.checkpoint import torch_predictor
    from facemtl.train.config import TrainConfig

    base = TrainConfig.load(args.config)
    sets = studies.evaluation_sets(base, args.synth_n, args.aflw2000)
    result = studies.header(STUDY, args, base, sets)
    result["trained"] = not args.checkpoints
    try:
        factors = [int(v) for v in args.factors.split(",")]
    except ValueError:
        raise ValueError(f"--factors {args.factors!r}: expected comma-separated integers") from None
    result["factors"] = factors
    for name, samples in sets.items():
        sides = [np.max(np.nanmax(s.landmarks, axis=0) - np.nanmin(s.landmarks, axis=0)) for s in samples]
        result["eval_sets"][name]["face_px"] = float(np.median(sides))
        gt_pnp = pnp_score(np.stack([s.landmarks for s in samples]), samples)
        result["eval_sets"][name]["ground_truth_pnp"] = gt_pnp
    low = {name: {f: degraded(samples, f) for f in factors} for name, samples in sets.items()}
    models, rows = [], []
    for name, model, cfg, where in _models(args, base):
        models.append({"name": name, "run": where, "model": cfg.model, "augment": cfg.augment,
                       "input_size": cfg.input_size,
                       "steps": cfg.steps if not cfg.init else f"{cfg.steps} from `{cfg.init}`"})
        predict = torch_predictor(model.eval(), next(model.parameters()).device)
        for set_name, by_factor in low.items():
            for factor, samples in by_factor.items():
                out = predict_samples(predict, samples, cfg.input_size, cfg.crop_scale)
                rows.append({"model": name, "set": set_name, "factor": factor, "method": "network",
                             **score(out, samples)})
                if "landmarks" in out:
                    rows.append({"model": name, "set": set_name, "factor": factor, "method": "landmarks + PnP",
                                 **pnp_score(out["landmarks"], samples)})
    result["models"], result["rows"] = models, rows
    return result


def _augment_text(augment: dict[str, Any]) -> str:
    from facemtl.data.transforms import Augment

    a = Augment(**augment)
    if not a.low_res:
        return "none"
    lo, hi = a.low_res_range
    return f"p = {a.low_res:g}, ×{lo:g}–{hi:g} of the input crop"


def to_markdown(result: dict[str, Any], images: dict[str, str]) -> str:
    factors = result["factors"]
    lines = ["## Low resolution (Hopenet Fig. 8)", "",
             "Evaluation images downsampled ×f and upsampled back (nearest neighbour both ways), then cropped "
             "as usual. `network`: the model's pose output; `landmarks + PnP`: pose solved from the model's "
             "predicted 68 landmarks with the mean face (focal length = image width; failures left out and "
             "counted). Pose MAE in degrees, mean of yaw, pitch and roll.", "",
             studies.setup_markdown(result),
             studies.markdown_table(["model", "architecture", "low-res augmentation", "input", "steps", "run"],
                                    [[m["name"], m["model"], _augment_text(m["augment"]), f"{m['input_size']} px",
                                      m["steps"], f"`{m['run']}`"] for m in result["models"]])]
    for set_name, info in result["eval_sets"].items():
        ref = info["ground_truth_pnp"]
        lines += [f"### `{set_name}` (median face {info['face_px']:.0f} px at ×1)", ""]
        table = []
        for m in result["models"]:
            for method in ("network", "landmarks + PnP"):
                cells = {r["factor"]: r for r in result["rows"]
                         if r["model"] == m["name"] and r["set"] == set_name and r["method"] == method}
                if not cells:
                    continue
                failed = sum(r.get("n_failed", 0) for r in cells.values())
                table.append([m["name"], method] + [cells[f].get("mae_mean") for f in factors]
                             + [str(failed) if method != "network" else "–"])
        table.append(["ground-truth landmarks", "PnP (×1 only)", ref["mae_mean"]] + ["–"] * (len(factors) - 1)
                     + [str(ref["n_failed"])])
        lines += [studies.markdown_table(["model", "pose from"] + [f"×{f}" for f in factors] + ["PnP failures"],
                                         table)]
    lines += [f"![pose MAE vs downsampling]({images['mae']})", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any]) -> dict[str, Any]:
    sets = list(result["eval_sets"])
    fig, axes = studies.new_figure(5.0 * len(sets), 4.0, ncols=len(sets))
    colours = {m["name"]: f"C{i}" for i, m in enumerate(result["models"])}
    for ax, set_name in zip(axes, sets):
        for m in result["models"]:
            for method, style in (("network", "o-"), ("landmarks + PnP", "s--")):
                rows = [r for r in result["rows"] if r["model"] == m["name"] and r["set"] == set_name
                        and r["method"] == method]
                if rows:
                    ax.plot([r["factor"] for r in rows], studies.finite([r.get("mae_mean") for r in rows]), style,
                            color=colours[m["name"]], label=f"{m['name']}: {method}")
        ref = result["eval_sets"][set_name]["ground_truth_pnp"]["mae_mean"]
        ax.axhline(ref, color="grey", ls=":", label="ground-truth landmarks + PnP")
        ax.set(xlabel="downsampling factor", ylabel="pose MAE, mean of 3 angles (deg)", title=set_name,
               xticks=result["factors"], ylim=(0, None))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return {"mae": fig}


def run(args: argparse.Namespace) -> int:
    result = run_study(args)
    print(studies.write_report(STUDY, args, result, to_markdown, plot(result)), end="")
    return 0

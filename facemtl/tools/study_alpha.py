"""``facemtl study alpha``: Hopenet's multi-loss weight α and the regression-only baseline (Table 5).

Hopenet trains each angle with cross-entropy over 66 bins plus α × the squared error of the
softmax expectation (:func:`facemtl.losses.hopenet_loss`); Table 5 of the paper varies α (0, 0.1,
1, 2, 4; α = 0 is classification alone) and compares with the same network regressing the angles
directly (``head="regression"``, MSE). Here every variant is the base config
(``facemtl/configs/study_alpha.yaml``: Hopenet on a ResNet-18, synthetic faces) with only α or the head
changed: same data, seed, steps and input size. Scored on the held-out synthetic faces and on
``aflw2000-dev`` (see :mod:`facemtl.tools.studies`).

    facemtl study alpha [--config study_alpha] [--steps N] [--variants alpha_0,alpha_2,regression]
"""

from __future__ import annotations

import argparse
from typing import Any

from facemtl.tools import studies

STUDY = "alpha"
ALPHAS = (0.0, 0.1, 1.0, 2.0, 4.0)
VARIANTS: dict[str, dict[str, Any]] = {
    **{f"alpha_{a:g}": {"model_options": {"head": "bins"}, "loss_options": {"alpha": a}} for a in ALPHAS},
    "regression": {"model_options": {"head": "regression"}},
}
AXES = ("yaw", "pitch", "roll", "mean")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    studies.add_arguments(parser, STUDY, list(VARIANTS))


def _label(row: dict[str, Any]) -> str:
    return "regression (MSE)" if row["head"] == "regression" else f"α = {row['alpha']:g}"


def run_study(args: argparse.Namespace) -> dict[str, Any]:
    """Train and score the selected variants; the result of the study (see :func:`to_markdown`)."""
    from facemtl.train.config import TrainConfig

    base = TrainConfig.load(args.config)
    if base.model != "hopenet":
        raise ValueError(f"{args.config}: the alpha study needs a hopenet base config, not {base.model!r}")
    sets = studies.evaluation_sets(base, args.synth_n, args.aflw2000)
    result = studies.header(STUDY, args, base, sets)
    rows = []
    variants = studies.select_variants(VARIANTS, args.variants)
    for name, overrides, cfg, model in studies.trained_variants(args, base, variants):
        head = cfg.model_options.get("head", "bins")
        rows.append({"name": name, "head": head,
                     "alpha": cfg.loss_options.get("alpha", 2.0) if head == "bins" else None,
                     "overrides": overrides, "run": str(args.runs_dir / name),
                     "metrics": studies.score_model(model, cfg, sets)})
    result["variants"] = rows
    return result


def to_markdown(result: dict[str, Any], images: dict[str, str]) -> str:
    lines = ["## Multi-loss weight α (Hopenet Table 5)", "",
             "Hopenet (ResNet-18 here) trained with cross-entropy over the bins + α × MSE of the expected angle, "
             "and the same network regressing the angles directly. Pose MAE in degrees (lower is better).", "",
             studies.setup_markdown(result)]
    for set_name in result["eval_sets"]:
        rows = [[_label(r)] + [r["metrics"][set_name].get(f"mae_{k}") for k in AXES]
                + [r["metrics"][set_name].get(f"bias_{k}") for k in AXES[:3]] for r in result["variants"]]
        lines += [studies.set_heading(set_name, result["variants"][0]["metrics"][set_name]), "",
                  studies.markdown_table(["loss", "yaw", "pitch", "roll", "mean", "bias yaw", "bias pitch",
                                          "bias roll"], rows)]
    lines += [f"![pose MAE per loss]({images['mae']})", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any]) -> dict[str, Any]:
    rows = result["variants"]
    fig, ax = studies.new_figure()
    studies.grouped_bars(ax, [_label(r) for r in rows],
                         {s: [r["metrics"][s].get("mae_mean") for r in rows] for s in result["eval_sets"]})
    ax.set(ylabel="pose MAE, mean of 3 angles (deg)", title="Hopenet multi-loss: α and regression")
    return {"mae": fig}


def run(args: argparse.Namespace) -> int:
    result = run_study(args)
    print(studies.write_report(STUDY, args, result, to_markdown, plot(result)), end="")
    return 0

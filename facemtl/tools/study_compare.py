"""``facemtl study compare``: every facemtl architecture trained the same way, scored the same way.

Each registered task model (:func:`facemtl.models.list_models`) is one variant of the base config
(``facemtl/configs/study_compare.yaml``): same data (synthetic faces), seed, steps, batch, input size, loss
settings and augmentation; only ``model`` and its options differ. Each model learns the tasks it
has heads for. Scored with the protocol on the held-out synthetic faces and ``aflw2000-dev``:
pose MAE per angle and bias, landmark NME, visibility (occlusion recall at 80 % precision) and
expression accuracy where the model has the head; plus its parameter count, its CPU latency per
crop (torch, batch 1, ``--latency-threads``) and its training speed.

    facemtl study compare [--config study_compare] [--steps N] [--variants hopenet_resnet18,mnn]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from facemtl.tools import studies

STUDY = "compare"
# Hopenet and 6DRepNet on the ResNet-18 (the papers use ResNet-50 and RepVGG-B1g2); MNN with its
# optional expression head so that it has every task the product nets have.
VARIANTS: dict[str, dict[str, Any]] = {
    "hopenet_resnet18": {"model": "hopenet", "model_options": {"backbone": "resnet18", "head": "bins"}},
    "sixdrepnet_resnet18": {"model": "sixdrepnet", "model_options": {"backbone": "resnet18"}},
    "mnn": {"model": "mnn", "model_options": {"expression": True}},
    "mtl_resnet18": {"model": "mtl_resnet18", "model_options": {}},
    "mtl_mobilenetv2": {"model": "mtl_mobilenetv2", "model_options": {"width": 1.0}},
    "mtl_mobilenetv3_large": {"model": "mtl_mobilenetv3_large", "model_options": {"width": 1.0}},
    "mtl_mobilenetv3_small": {"model": "mtl_mobilenetv3_small", "model_options": {"width": 1.0}},
    "mtl_efficientnet_lite0": {"model": "mtl_efficientnet_lite0", "model_options": {"pretrained": True}},
}
AXES = ("yaw", "pitch", "roll", "mean")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    studies.add_arguments(parser, STUDY, list(VARIANTS))
    parser.add_argument("--latency-threads", type=int, default=1, help="torch threads of the latency timing "
                                                                       "(default 1)")
    parser.add_argument("--latency-repeats", type=int, default=20, help="timed crops per model (default 20)")


def run_study(args: argparse.Namespace) -> dict[str, Any]:
    from facemtl.train.config import TrainConfig

    base = TrainConfig.load(args.config)
    sets = studies.evaluation_sets(base, args.synth_n, args.aflw2000)
    result = studies.header(STUDY, args, base, sets)
    rows = []
    variants = studies.select_variants(VARIANTS, args.variants)
    for name, _, cfg, model in studies.trained_variants(args, base, variants):
        run_dir = args.runs_dir / name
        rows.append({"name": name, "model": cfg.model, "model_options": cfg.model_options, "run": str(run_dir),
                     "params": studies.count_parameters(model),
                     "latency_ms": studies.cpu_latency_ms(model, cfg.input_size, args.latency_threads,
                                                          args.latency_repeats),
                     "train_images_per_s": studies.train_speed(run_dir),
                     "metrics": studies.score_model(model, cfg, sets)})
    result["variants"] = rows
    return result


def to_markdown(result: dict[str, Any], images: dict[str, str]) -> str:
    rows = result["variants"]
    lines = ["## Architectures compared", "",
             "Every implemented architecture trained the same way and scored on the same faces. Pose MAE and "
             "bias (prediction − truth) in degrees; NME in % of the inter-ocular distance; occlusion recall at "
             "80 % precision; expression accuracy on the synthetic faces' derived expressions. A dash: the model "
             "has no such head (or the set no such label).", "",
             studies.setup_markdown(result)]
    for set_name in result["eval_sets"]:
        table = []
        for r in rows:
            m = r["metrics"][set_name]
            nme = m.get("nme_inter_ocular")
            table.append([r["name"]] + [m.get(f"mae_{k}") for k in AXES] + [m.get(f"bias_{k}") for k in AXES[:3]]
                         + [None if nme is None else 100 * nme, m.get("occlusion_recall_at_p80"),
                            m.get("expression_accuracy")])
        lines += [studies.set_heading(set_name, rows[0]["metrics"][set_name]), "",
                  studies.markdown_table(["model", "yaw", "pitch", "roll", "mean", "bias yaw", "bias pitch",
                                          "bias roll", "NME %", "occl. recall", "expr. acc."], table)]
    lat = rows[0]["latency_ms"]
    lines += ["### Cost", "",
              f"CPU latency: one crop through torch (forward + decode), {lat['threads']} thread(s), min and "
              f"median of timed runs (1-min load average at the time in brackets; a loaded machine inflates the "
              f"median). Training speed: median images/s of the run's log.", "",
              studies.markdown_table(
                  ["model", "architecture", "params (M)", "latency min (ms)", "latency median (ms)",
                   "train images/s"],
                  [[r["name"], f"`{r['model']}` {json.dumps(r['model_options'])}", r["params"] / 1e6,
                    r["latency_ms"]["min"], f"{r['latency_ms']['median']:.2f} ({r['latency_ms']['load_avg_1min']:.1f})",
                    r["train_images_per_s"]] for r in rows]),
              f"![pose MAE per architecture]({images['mae']})", "",
              f"![accuracy vs latency]({images['speed']})", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any]) -> dict[str, Any]:
    rows = result["variants"]
    names = list(result["eval_sets"])
    fig, ax = studies.new_figure(max(6.5, 1.1 * len(rows)), 4.0)
    studies.grouped_bars(ax, [r["name"] for r in rows],
                         {s: [r["metrics"][s].get("mae_mean") for r in rows] for s in names}, rotation=20)
    ax.set(ylabel="pose MAE, mean of 3 angles (deg)", title="Architectures: pose error")

    fig2, ax2 = studies.new_figure()
    latency = [r["latency_ms"]["min"] for r in rows]
    for k, set_name in enumerate(names):
        values = studies.finite([r["metrics"][set_name].get("mae_mean") for r in rows])
        ax2.scatter(latency, values, color=f"C{k}", label=set_name)
        for lat, v, r in zip(latency, values, rows):
            ax2.annotate(r["name"], (lat, v), fontsize=7, xytext=(3, 3), textcoords="offset points")
    threads = rows[0]["latency_ms"]["threads"]
    ax2.set(xlabel=f"CPU latency per crop, {threads} thread(s), min (ms)", ylabel="pose MAE, mean (deg)",
            title="Accuracy vs speed")
    ax2.legend()
    ax2.grid(alpha=0.3)
    return {"mae": fig, "speed": fig2}


def run(args: argparse.Namespace) -> int:
    result = run_study(args)
    print(studies.write_report(STUDY, args, result, to_markdown, plot(result)), end="")
    return 0

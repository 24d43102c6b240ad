"""The harness shared by ``facemtl study alpha | low-res | compare``: train variants, score, report.

A study is a base training config (``facemtl/configs/study_*.yaml``, a plain :class:`TrainConfig` that
``facemtl train`` also runs) and named *variants* of it, each a set of config overrides (a dict
override merges into the base's dict, one level deep; anything else replaces it). Every variant
trains with the same data, seed, steps and input size into ``RUNS/NAME`` (:func:`train_variant`:
a finished run with the same config is reused, an unfinished one resumed, so an interrupted study
continues where it stopped), then is scored by :func:`facemtl.evaluate.protocol.evaluate` on the
same held-out sets (:func:`evaluation_sets`): synthetic faces of held-out seeds (the trainer's
own validation set) and the real ``aflw2000-dev`` (evaluation only, never trained on).

Reports (:func:`write_report`): the study's markdown section in ``docs/studies.md`` between
``<!-- study NAME: begin/end -->`` markers (replaced on every run, the rest of the file kept),
its PNG plots under ``docs/studies/``, and every number as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from facemtl.data.sample import Sample
from facemtl.train.config import TrainConfig

Variant = tuple[str, dict[str, Any]]
# Config keys that change how fast a run goes, not what it learns: a checkpoint differing only in
# them is still the same run.
RUNTIME_KEYS = ("workers", "threads", "log_every", "checkpoint_every")


def add_arguments(parser: argparse.ArgumentParser, study: str, variants: Sequence[str]) -> None:
    """The options every study command has; ``variants``: the study's variant names."""
    slug = study.replace("-", "_")
    parser.add_argument("--config", type=Path, default=Path(f"study_{slug}"),
                        help=f"base training config: a file or a shipped config's name (default study_{slug})")
    parser.add_argument("--steps", type=int, help="training steps of every variant (default: the config's)")
    parser.add_argument("--variants", help=f"comma-separated subset of: {', '.join(variants)} (default: all)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs") / f"study-{study}",
                        help=f"one run folder per variant (default runs/study-{study}); finished runs with the "
                             "same config are reused, unfinished ones resumed")
    parser.add_argument("--retrain", action="store_true", help="train every variant afresh")
    parser.add_argument("--out-dir", type=Path, default=Path("docs") / "studies",
                        help="folder of the plots (default docs/studies)")
    parser.add_argument("--doc", type=Path, default=Path("docs") / "studies.md",
                        help="markdown file whose section of this study is (re)written (default docs/studies.md)")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--synth-n", type=int, help="held-out synthetic faces (default: the config's val.synth_n)")
    parser.add_argument("--aflw2000", help="AFLW2000-format folder scored too (default: the config's val.aflw2000; "
                                           "'' for none)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--workers", type=int, help="data workers of every training run (default: the config's; "
                                                    "the results do not depend on it)")
    parser.add_argument("--threads", type=int, help="torch threads of every training run (default: the config's)")


def command_line(study: str, args: argparse.Namespace) -> str:
    """The command that reproduces this run (its study-shaping options)."""
    words = ["facemtl", "study", study, "--config", str(args.config)]
    for flag in ("steps", "variants", "synth_n", "aflw2000", "checkpoints", "factors"):
        value = getattr(args, flag, None)
        if value is not None:
            value = " ".join(map(str, value)) if isinstance(value, list) else value
            words += [f"--{flag.replace('_', '-')}", str(value) if str(value) else "''"]
    return " ".join(words)


def select_variants(variants: dict[str, dict[str, Any]], names: str | None) -> list[Variant]:
    """The variants named in ``names`` (comma-separated; None: all), in the study's order."""
    if names is None:
        return list(variants.items())
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in variants]
    if unknown or not wanted:
        raise ValueError(f"unknown variants {unknown or names!r}; known: {', '.join(variants)}")
    return [(n, variants[n]) for n in variants if n in wanted]


def variant_config(base: TrainConfig, name: str, overrides: dict[str, Any], steps: int | None = None) -> TrainConfig:
    """``base`` with ``overrides`` (dicts merged one level deep), named ``name``.

    A variant of another ``model`` starts from empty ``model_options``.

    The trainer's own validation is off (the study scores every variant afterwards). ``steps``
    replaces the schedule's length; the warm-up is cut to a tenth of it when it would not fit.
    """
    d = base.to_dict() | {"name": name, "val": {}}
    if overrides.get("model", d["model"]) != d["model"]:
        d["model_options"] = {}  # another architecture's options mean nothing to this one
    for key, value in overrides.items():
        if key not in d:
            raise ValueError(f"variant {name!r}: unknown config key {key!r}")
        d[key] = d[key] | value if isinstance(value, dict) and isinstance(d[key], dict) else value
    if steps is not None:
        d["steps"] = steps
        d["warmup_steps"] = min(d["warmup_steps"], max(1, steps // 10))
    return TrainConfig.from_dict(d)


def train_variant(cfg: TrainConfig, runs_dir: Path, device: str | None = None, retrain: bool = False):
    """Train ``cfg`` into ``runs_dir / cfg.name`` and return the model (eval mode).

    A checkpoint there with the same config (up to :data:`RUNTIME_KEYS`) is reused when finished
    and resumed otherwise.
    """
    import cv2

    from facemtl.train.checkpoint import load_trained, read_checkpoint
    from facemtl.train.trainer import train

    # The trainer's data workers are forked and set OpenCV to one thread; a child forked while this
    # process holds an OpenCV thread pool (from the evaluation images) hangs there for good.
    cv2.setNumThreads(1)
    out = Path(runs_dir) / cfg.name
    ckpt = out / "last.pt"
    resume = False
    if ckpt.is_file() and not retrain:
        state = read_checkpoint(ckpt)
        if _learned(TrainConfig.from_dict(state["config"])) == _learned(cfg):
            if state["step"] >= cfg.steps:
                model, _ = load_trained(ckpt)
                return model.to(_device(device))
            resume = True
    return train(cfg, out, resume=resume, device=device).eval()


def _learned(cfg: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in cfg.to_dict().items() if k not in RUNTIME_KEYS}


def _device(device: str | None):
    import torch

    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def trained_variants(args: argparse.Namespace, base: TrainConfig,
                     variants: Sequence[Variant]) -> Iterator[tuple[str, dict[str, Any], TrainConfig, Any]]:
    """``(name, overrides, config, model)`` of every variant, trained (or reused) one after another."""
    runtime = {k: getattr(args, k) for k in ("workers", "threads") if getattr(args, k, None) is not None}
    for name, overrides in variants:
        cfg = replace(variant_config(base, name, overrides, args.steps), **runtime)
        yield name, overrides, cfg, train_variant(cfg, args.runs_dir, args.device, args.retrain)


def evaluation_sets(base: TrainConfig, synth_n: int | None = None,
                    aflw2000: str | None = None) -> dict[str, list[Sample]]:
    """The held-out sets: ``synth`` (``synth_n`` renders of the trainer's validation seed, with the
    config's first synth source's options) and ``aflw2000`` (a folder; '' for none)."""
    from facemtl.train.trainer import validation_sets

    synth_n = int(base.val.get("synth_n", 0)) if synth_n is None else synth_n
    aflw2000 = base.val.get("aflw2000") if aflw2000 is None else aflw2000
    if aflw2000 and not Path(aflw2000).is_dir():
        raise FileNotFoundError(f"{aflw2000}: AFLW2000 folder not found (pass --aflw2000 '' to skip it)")
    if synth_n and not any(s.type == "synth" for s in base.data):
        raise ValueError(f"{base.name}: the config has no synth source to draw held-out faces from")
    sets = validation_sets(replace(base, val={"synth_n": synth_n, "aflw2000": aflw2000}))
    if not sets:
        raise ValueError("no evaluation set: give --synth-n or --aflw2000")
    return sets


def describe_sets(sets: dict[str, list[Sample]], base: TrainConfig, aflw2000: str | None) -> dict[str, Any]:
    """Name -> what the set is (for the report)."""
    out: dict[str, Any] = {}
    for name, samples in sets.items():
        if name == "synth":
            out[name] = {"n": len(samples), "what": f"synthetic faces of held-out seed {base.seed + 1_000_003}"}
        else:
            root = aflw2000 if aflw2000 is not None else base.val.get("aflw2000")
            out[name] = {"n": len(samples), "what": f"real AFLW2000-3D faces of {root} (evaluation only)"}
    return out


def score_model(model, cfg: TrainConfig, sets: dict[str, list[Sample]]) -> dict[str, dict[str, float]]:
    """The protocol's metrics of ``model`` on every set (its own input size and crop)."""
    from facemtl.evaluate.protocol import evaluate
    from facemtl.train.checkpoint import torch_predictor

    predict = torch_predictor(model.eval(), next(model.parameters()).device)
    return {name: evaluate(predict, samples, cfg.input_size, cfg.crop_scale) for name, samples in sets.items()}


def count_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def cpu_latency_ms(model, size: int, threads: int = 1, repeats: int = 20) -> dict[str, float]:
    """Milliseconds of one forward pass + decode of one (1, 3, size, size) crop on the CPU with
    ``threads`` torch threads: ``min`` and ``median`` of ``repeats`` timed calls after 3 warm-up
    calls, and the 1-minute load average (other processes slow the median down)."""
    import copy

    import torch

    net = copy.deepcopy(model).cpu().eval()
    x = torch.rand(1, 3, size, size) * 255
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        times = []
        with torch.no_grad():
            for i in range(repeats + 3):
                tic = time.perf_counter()
                net.decode(net(x))
                if i >= 3:
                    times.append(1000 * (time.perf_counter() - tic))
    finally:
        torch.set_num_threads(previous)
    return {"min": min(times), "median": statistics.median(times), "threads": threads,
            "load_avg_1min": os.getloadavg()[0]}


def train_speed(run_dir: Path) -> float | None:
    """Median training images/s logged in ``run_dir/metrics.csv`` (None without a log)."""
    from facemtl.train.log import CsvLog

    rates = [float(r["images_per_s"]) for r in CsvLog(Path(run_dir) / "metrics.csv").read() if r.get("images_per_s")]
    return statistics.median(rates) if rates else None


# ---- reporting ------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 2) -> str:
    """A table cell: floats to ``digits`` decimals, missing / NaN as a dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def setup_markdown(result: dict[str, Any]) -> str:
    """The 'how it was run' paragraph every study section starts with."""
    cfg = result["config"]
    data = "; ".join(f"{d['type']}" + (f" {d['name']}" if d.get("name") else "") + f" ×{d['weight']:g}"
                     + (f" {json.dumps(d['options'])}" if d.get("options") else "") for d in cfg["data"])
    sets = "; ".join(f"`{k}`: {v['n']} {v['what']}" for k, v in result["eval_sets"].items())
    training = (f"Training (every variant alike): base config `{result['config_path']}`, {cfg['steps']} steps of "
                f"{cfg['batch_size']} crops at {cfg['input_size']} px (crop scale {cfg['crop_scale']:g}), seed "
                f"{cfg['seed']}, lr {cfg['lr']:g}, loss {json.dumps(cfg['loss_options'])}, augmentation "
                f"{json.dumps(cfg['augment'])}. Data: {data}." if result.get("trained", True)
                else "Models: the checkpoints given, each as its own config trained it (table below).")
    return (f"Command: `{result['command']}` ({result['wall_s'] / 60:.1f} min on {result['machine']}).\n\n"
            f"{training}\n\n"
            f"Scored with the evaluation protocol (ground-truth landmark boxes; pose MAE over faces with every "
            f"angle within ±99°) on {sets}.\n")


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{os.cpu_count()} CPU cores"


def header(study: str, args: argparse.Namespace, base: TrainConfig, sets: dict[str, list[Sample]]) -> dict[str, Any]:
    """The part of a study's result shared by every study (its ``wall_s`` is set by :func:`write_report`)."""
    config = variant_config(base, base.name, {}, args.steps).to_dict()
    return {"study": study, "command": command_line(study, args), "config_path": str(args.config),
            "config": config, "eval_sets": describe_sets(sets, base, args.aflw2000), "machine": machine(),
            "started": time.time()}


def update_section(doc: Path, study: str, text: str) -> None:
    """Replace the study's section of ``doc`` (between its markers), or append it; create ``doc``."""
    begin, end = f"<!-- study {study}: begin -->", f"<!-- study {study}: end -->"
    old = doc.read_text() if doc.is_file() else "# facemtl studies\n"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    i, j = old.find(begin), old.find(end)
    if i >= 0 and j > i:
        new = old[:i] + block + old[j + len(end):]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new)


def write_report(study: str, args: argparse.Namespace, result: dict[str, Any], markdown,
                 figures: dict[str, Any]) -> str:
    """Save ``figures`` (name -> matplotlib figure) as ``OUT_DIR/{study}_{name}.png``, write the
    JSON and the study's section of ``args.doc``; returns the section.

    ``markdown(result, images)`` renders the section; ``images`` maps each figure name to its
    path relative to the doc.
    """
    import matplotlib.pyplot as plt

    slug = study.replace("-", "_")
    result["wall_s"] = time.time() - result.pop("started")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    images = {}
    for name, fig in figures.items():
        path = args.out_dir / f"{slug}_{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        images[name] = Path(os.path.relpath(path, args.doc.parent)).as_posix()
    result["plots"] = [str(args.out_dir / f"{slug}_{name}.png") for name in figures]
    text = markdown(result, images)
    update_section(args.doc, study, text)
    if args.json is not None:
        from facemtl.tools.landmark_to_pose import _jsonable

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_jsonable(result), indent=2) + "\n")
    return text


def new_figure(width: float = 6.5, height: float = 4.0, ncols: int = 1):
    """A matplotlib ``(figure, axes)`` on the file-only backend: one axes, or ``ncols`` of them in a row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False)
    return fig, axes[0, 0] if ncols == 1 else axes[0]


def finite(values: Sequence[float | None]) -> np.ndarray:
    """Values as floats with None as NaN (for plotting)."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def grouped_bars(ax, labels: Sequence[str], series: dict[str, Sequence[float | None]], rotation: float = 0) -> None:
    """One group of bars per label, one bar per series (legend above the bars)."""
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(series))
    top = 0.0
    for k, (name, values) in enumerate(series.items()):
        v = finite(values)
        ax.bar(x + (k - (len(series) - 1) / 2) * width, v, width, label=name)
        top = max(top, float(np.nanmax(v, initial=0.0)))
    ax.set_xticks(x, labels, rotation=rotation, ha="right" if rotation else "center")
    ax.set_ylim(0, 1.25 * top or 1.0)
    ax.legend(loc="upper center", ncols=len(series))
    ax.grid(axis="y", alpha=0.3)


def set_heading(set_name: str, metrics: dict[str, float]) -> str:
    """``### `set` (n faces, m scored)``: how many faces a set's pose MAE is over."""
    n, scored = int(metrics.get("n", 0)), metrics.get("pose_n")
    within = f", {int(scored)} within ±99°" if scored is not None and int(scored) != n else ""
    return f"### `{set_name}` ({n} faces{within})"

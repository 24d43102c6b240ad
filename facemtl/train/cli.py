"""``facemtl train --config NAME [--resume]``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from facemtl.train.config import TrainConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config: a file, or the name of a shipped one "
                             "(facemtl/configs/NAME.yaml, e.g. default)")
    parser.add_argument("--out", default=None, help="run folder (default runs/NAME)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt exactly")
    parser.add_argument("--steps", type=int, default=None, help="override the number of steps")
    parser.add_argument("--stop-at", type=int, default=None,
                        help="stop (with a checkpoint) after this many steps; --resume continues")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")


def first_missing_input(cfg: "TrainConfig") -> str | None:
    """One line naming the first input path of ``cfg`` that does not exist (data roots, the
    checkpoint to start from, validation sets) and the command that makes it; None if all exist."""
    from pathlib import Path

    paths = [d.root for d in cfg.data if d.root] + ([cfg.init] if cfg.init else [])
    paths += [v for k, v in cfg.val.items() if isinstance(v, str) and k != "synth_n"]
    for path in paths:
        if not Path(path).exists():
            make = cfg.prepare.get(path)
            how = f"make it first with: {make}" if make else "give the right path in the config"
            return f"{path} not found (from {cfg.name}'s config); {how}"
    return None


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from facemtl.train import superres
    from facemtl.train.checkpoint import CHECKPOINT_NAME
    from facemtl.train.config import TrainConfig, UnsupportedOption

    # Super-resolution configs say ``task: superres`` and have their own schema; the others are
    # TrainConfigs whose model picks the loop (_loop). Every loop takes the same options.
    sr_dict = superres.read_config(args.config)
    if sr_dict is not None:
        cfg, loop = superres.SRConfig.from_dict(sr_dict), superres.train
    else:
        try:
            cfg = TrainConfig.load(args.config)
        except ValueError as e:
            print(f"facemtl train: {e}", file=sys.stderr)
            return 2
        missing = None if args.resume else first_missing_input(cfg)
        if missing:
            print(f"facemtl train: {missing}", file=sys.stderr)
            return 2
        loop = _loop(cfg)
    if args.steps is not None:
        cfg.steps = args.steps
    out = Path(args.out or Path("runs") / cfg.name)
    try:
        loop(cfg, out, resume=args.resume, device=args.device, stop_at=args.stop_at)
    except UnsupportedOption as e:
        print(f"facemtl train: {e}", file=sys.stderr)
        return 2
    print(out / CHECKPOINT_NAME)
    return 0


def _loop(cfg: "TrainConfig"):
    """The training loop of a TrainConfig: the expression net's, the detector's (a ``mos_*``
    model: whole canvases with anchor targets) or the multi-task trainer's."""
    from facemtl.train import expression
    from facemtl.train.detection.trainer import is_detector, train_detector
    from facemtl.train.trainer import train

    if expression.is_expression_config(cfg):
        return expression.train
    return train_detector if is_detector(cfg) else train

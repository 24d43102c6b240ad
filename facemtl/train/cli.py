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

    from facemtl.train.checkpoint import CHECKPOINT_NAME
    from facemtl.train.config import TrainConfig
    from facemtl.train.trainer import train

    if (sr := _superres(args)) is not None:
        return sr
    try:
        cfg = TrainConfig.load(args.config)
    except ValueError as e:
        print(f"facemtl train: {e}", file=sys.stderr)
        return 2
    missing = None if args.resume else first_missing_input(cfg)
    if missing:
        print(f"facemtl train: {missing}", file=sys.stderr)
        return 2
    if args.steps is not None:
        cfg.steps = args.steps
    out = Path(args.out or Path("runs") / cfg.name)
    from facemtl.train.detection.trainer import is_detector, train_detector
    from facemtl.train.expression import is_expression_config

    if is_expression_config(cfg):  # the dedicated expression net has its own small loop
        from facemtl.train.expression import train as train_expression

        if args.resume or args.stop_at is not None:
            print(f"facemtl train: {cfg.name}: the expression trainer runs in one go (it keeps no resumable "
                  "checkpoint); --resume and --stop-at are not supported there", file=sys.stderr)
            return 2
        print(train_expression(cfg, out))
        return 0
    # A detector (mos_* model) trains on whole canvases with anchor targets: its own loop.
    (train_detector if is_detector(cfg) else train)(cfg, out, resume=args.resume, device=args.device,
                                                    stop_at=args.stop_at)
    print(out / CHECKPOINT_NAME)
    return 0


def _superres(args: argparse.Namespace) -> int | None:
    """Train a super-resolution config (``task: superres``, :mod:`facemtl.train.superres`); None for others."""
    from pathlib import Path

    from facemtl.train import superres

    d = superres.read_config(args.config)
    if d is None:
        return None
    cfg = superres.SRConfig.from_dict(d)
    if args.steps is not None:
        cfg.steps = args.steps
    out = Path(args.out or Path("runs") / cfg.name)
    superres.train(cfg, out, resume=args.resume, stop_at=args.stop_at)
    print(out / "last.pt")
    return 0

"""``facemtl train --config configs/NAME.yaml [--resume]``."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML config (see configs/)")
    parser.add_argument("--out", default=None, help="run folder (default runs/NAME)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt exactly")
    parser.add_argument("--steps", type=int, default=None, help="override the number of steps")
    parser.add_argument("--stop-at", type=int, default=None,
                        help="stop (with a checkpoint) after this many steps; --resume continues")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from facemtl.train.config import TrainConfig
    from facemtl.train.trainer import train

    cfg = TrainConfig.load(args.config)
    if args.steps is not None:
        cfg.steps = args.steps
    out = Path(args.out or Path("runs") / cfg.name)
    from facemtl.train.expression import is_expression_config

    if is_expression_config(cfg):  # the dedicated expression net has its own small loop
        from facemtl.train.expression import train as train_expression

        print(train_expression(cfg, out))
        return 0
    train(cfg, out, resume=args.resume, device=args.device,
                 stop_at=args.stop_at)
    print(out / "last.pt")
    return 0

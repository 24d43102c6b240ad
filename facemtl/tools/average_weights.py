"""Average the weights of fine-tunes of one model into one checkpoint (a "model soup").

    python -m facemtl.tools.average_weights A.pt B.pt --out soup.pt

The result is weights-only (``facemtl eval --model``, ``facemtl export --checkpoint``, a config's
``init``), with the last checkpoint's config and step.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facemtl.tools.average_weights", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="training checkpoints or weights-only files of one model")
    parser.add_argument("--out", required=True, help="the averaged weights (.pt)")
    args = parser.parse_args(argv)
    from facemtl.io import FileError
    from facemtl.train.checkpoint import average_weights

    if len(args.checkpoints) < 2:
        parser.error("give two or more checkpoints")
    try:
        average_weights(args.checkpoints, args.out)
    except (FileError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: the mean of {len(args.checkpoints)} models")
    return 0


if __name__ == "__main__":
    sys.exit(main())

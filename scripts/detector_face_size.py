"""Recall of a MOS detector by the size its faces are drawn at on the canvas.

How small may a face be drawn before the detector misses it? This chooses
``facemtl.infer.mos_detector.RELIABLE_FACE``, the face size a ``min_face`` setting shrinks the
canvas to (with the held-out rendered scenes of ``bench_detector.py --min-face``).

    python scripts/detector_face_size.py [--mos facemtl/assets/mos.onnx] [--sizes 16 20 24 32 40 48]

Each held-out photo (the 100 300-W helen-train crops of ``holdout="val"`` and the held-out LFW
identities, ``lfw_faces(..., "val")``: one main face each, never trained on) is brought to the
canvas that draws its face's landmark box with a longer side of each size in turn; a face is found
when a detection at the threshold overlaps its box with IoU >= 0.3, as in ``bench_detector.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from facemtl.infer.detector import create_detector
from facemtl.io import shared_dir
from facemtl.metrics.detection import iou


def main(argv: list[str] | None = None) -> int:
    from bench_detector import eval_sets, load_item  # the same held-out sets and image loading

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=None)
    parser.add_argument("--mos", type=Path, default=None, help="MOS ONNX file (default the shipped one)")
    parser.add_argument("--score", type=float, default=0.5, help="score threshold (default 0.5)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 20, 24, 28, 32, 40, 48, 64],
                        help="face sides on the canvas, pixels")
    args = parser.parse_args(argv)
    sets = eval_sets(args.shared or shared_dir(), None)
    detector = create_detector("mos", model_path=args.mos, score=args.score)
    print(f"MOS {detector.path.name}, threshold {args.score:g}: faces found by landmark-box side on the canvas")
    for name in ("300-W held-out", "LFW held-out"):
        items = [(load_item(p, clean=name.startswith("LFW")), g[0]) for p, g, _ in sets[name]]
        row = []
        for size in args.sizes:
            found = 0
            for image, box in items:
                side = max(box[2] - box[0], box[3] - box[1])
                detector.canvas = max(1, round(max(image.shape[:2]) * size / side))
                boxes, _ = detector(image)
                found += int(len(boxes) > 0 and (iou(np.asarray(boxes), box[None]) >= 0.3).any())
            row.append(f"{size} px {found}/{len(items)}")
        print(f"  {name:16s} " + ", ".join(row))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())

"""Pose and landmarks of small faces with and without ``--super-resolve`` (issue #15).

    python scripts/bench_lowres_sr.py                      # aflw2000-dev and the 300-W val faces
    python scripts/bench_lowres_sr.py --factors 1,5,10,15 --sr-model runs/superres.onnx

Each image is shrunk ``f`` times by area averaging (a face really that small, not the low-res
study's blocks at the original size) and :class:`facemtl.FaceAnalyzer` reads the face in its
ground-truth landmark box, scaled the same, once plainly and once with ``super_resolve=True``
(faces under ``sr_threshold`` px, 40 by default, are super-resolved first). Prints, per factor, the
median face size, pose MAE (AFLW2000, faces within ±99°) and NME (% of the outer-eye-corner
distance) of both.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from facemtl import FaceAnalyzer
from facemtl.data.registry import load_dataset
from facemtl.io import shared_dir
from facemtl.metrics import nme, pose_mae


def read_faces(analyzer: FaceAnalyzer, samples: list, factor: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Predicted poses (N, 3) and landmarks (N, 68, 2, original pixels) of the shrunk images."""
    poses, points, sides = [], [], []
    for s in samples:
        image = s.load_image()
        h, w = image.shape[:2]
        small = cv2.resize(image, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
        scale = np.array([small.shape[1] / w, small.shape[0] / h])
        box = np.concatenate([np.nanmin(s.landmarks, 0) * scale, np.nanmax(s.landmarks, 0) * scale])
        face = analyzer(small, boxes=box[None], refine=False)[0]
        poses.append(face.pose.ypr)
        points.append(face.landmarks / scale)
        sides.append(max(box[2] - box[0], box[3] - box[1]))
    return np.array(poses), np.array(points), float(np.median(sides))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--factors", default="1,5,10,15")
    ap.add_argument("--sr-model", default=None, help="super-resolution ONNX (default: the shipped one)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    data = shared_dir() / "data"
    sets = {"aflw2000-dev": load_dataset("aflw2000", data / "aflw2000-dev"),
            "300-W val": load_dataset("300w", data / "300w" / "helen-train", holdout="val")}
    plain = FaceAnalyzer(threads=args.threads, expression_model=False)
    sr = FaceAnalyzer(threads=args.threads, expression_model=False, super_resolve=True,
                      sr_model=Path(args.sr_model) if args.sr_model else None)
    print("set | factor | face px | pose MAE plain / SR (deg) | NME plain / SR (%)")
    for name, samples in sets.items():
        truth = np.array([s.landmarks for s in samples])
        for f in map(int, args.factors.split(",")):
            (p0, l0, side), (p1, l1, _) = read_faces(plain, samples, f), read_faces(sr, samples, f)
            pose = "-"
            if samples[0].pose is not None:  # the ±99° protocol filter is pose_mae's
                gt = np.array([s.pose for s in samples])
                pose = f"{pose_mae(p0, gt)['mean']:.2f} / {pose_mae(p1, gt)['mean']:.2f}"
            print(f"{name} | {f} | {side:.0f} | {pose} | {100 * np.mean(nme(l0, truth)):.2f} / "
                  f"{100 * np.mean(nme(l1, truth)):.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

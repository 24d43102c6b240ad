"""A sheet of held-out 300-W photos turned as `facemtl profile` turns them, one row per photo and one
column per rendering (hard seams, --soft-seams, --soft-seams --head-content) and target yaw: what
the 300W-LP of our own looks like, next to real profiles' ears and hair.

    python scripts/turned_views_sheet.py --out docs/figures/turned_views.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from facemtl.data.registry import load_dataset
from facemtl.io import shared_dir
from facemtl.synth.facemodel import FaceModel
from facemtl.synth.fit import fit_landmarks
from facemtl.synth.lp import resized_photo
from facemtl.synth.profile import profile_photo
from facemtl.synth.texture import photo_texture

STYLES = {"hard seams": {}, "soft seams": {"soft_seams": True},
          "head content": {"soft_seams": True, "head_content": True}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=shared_dir() / "data" / "300w" / "helen-train",
                        help="the folder whose held-out faces are turned (default: helen-train)")
    parser.add_argument("--photos", type=int, default=4, help="rows (default 4)")
    parser.add_argument("--yaw", type=float, nargs="+", default=[40.0, 70.0],
                        help="target |yaw| of the turned views, degrees (default 40 70)")
    parser.add_argument("--size", type=int, default=192, help="long side of the photo as profiled (default 192, "
                                                            "facemtl profile's)")
    parser.add_argument("--cell", type=int, default=160, help="side of each cell, px (default 160)")
    parser.add_argument("--out", type=Path, required=True, help="the image to write (.jpg or .png)")
    args = parser.parse_args()

    model = FaceModel.load()
    rows = []
    for sample in load_dataset("300w", args.root, holdout="val")[:args.photos]:
        image, points = resized_photo(sample, args.size)
        fit = fit_landmarks(points, image.shape[1::-1], model)
        side = 1.0 if fit.pose[0] >= 0 else -1.0  # turn further the way the face already looks
        row = []
        for options in STYLES.values():
            texture = photo_texture(image, fit, model, **options)
            for yaw in args.yaw:
                turned, _ = profile_photo(image, fit, side * yaw - fit.pose[0], model, texture,
                                          head_content=options.get("head_content", False))
                row.append(cv2.resize(turned, (args.cell, args.cell), interpolation=cv2.INTER_AREA))
        rows.append(np.hstack(row))
    sheet = np.vstack(rows)
    header = np.full((24, sheet.shape[1], 3), 255, np.uint8)
    for i, name in enumerate(STYLES):
        for j, yaw in enumerate(args.yaw):
            x = (i * len(args.yaw) + j) * args.cell + 4
            cv2.putText(header, f"{name}, {yaw:.0f} deg", (x, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                        cv2.LINE_AA)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack([header, sheet]))
    print(f"{args.out}: {len(rows)} photos x {len(STYLES) * len(args.yaw)} views")


if __name__ == "__main__":
    main()

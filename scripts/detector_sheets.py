"""Contact sheets of MOS detectors side by side on a video, to look at what each boxes (real faces,
torsos, lettering): every ``--every``-th frame, one column per ONNX file, each box with its score;
six frames a sheet, written as ``sheetN.png`` in ``--out``. Prints the boxes each detector gave::

    python scripts/detector_sheets.py ../shared/data/videos/facenet_pytorch_video.mp4 \
        --mos facemtl/assets/mos.onnx runs/mos_narrow/mos.int8.onnx --out sheets
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from facemtl.geometry.draw import draw_box
from facemtl.infer.mos_detector import MosDetector
from facemtl.infer.video import VideoSummary, open_video, read_frames


def annotated(detector: MosDetector, frame: np.ndarray, width: int) -> tuple[np.ndarray, int]:
    """The frame with the detector's boxes and scores, ``width`` pixels wide, and the box count."""
    found = detector.detect(frame)
    image = frame.copy()
    for box, score in zip(found["boxes"], found["scores"]):
        draw_box(image, box, label=f"{score:.2f}")
    return cv2.resize(image, (width, round(frame.shape[0] * width / frame.shape[1]))), len(found["boxes"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--mos", type=Path, nargs="+", required=True, help="MOS ONNX files (facemtl export)")
    ap.add_argument("--every", type=int, default=6)
    ap.add_argument("--width", type=int, default=640, help="width of one frame in the sheet")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    detectors = [MosDetector(p) for p in args.mos]
    args.out.mkdir(parents=True, exist_ok=True)
    rows, counts = [], np.zeros(len(detectors), int)
    for index, _, frame in read_frames(open_video(args.video), args.video, VideoSummary()):
        if index % args.every:
            continue
        tiles = [annotated(d, frame, args.width) for d in detectors]
        counts += [n for _, n in tiles]
        rows.append(np.hstack([t for t, _ in tiles]))
    for k in range(0, len(rows), 6):
        cv2.imwrite(str(args.out / f"sheet{k // 6}.png"), np.vstack(rows[k:k + 6]))
    print(f"{len(rows)} frames of {args.video}; boxes: "
          + ", ".join(f"{p} {n}" for p, n in zip(args.mos, counts)) + f"; sheets in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

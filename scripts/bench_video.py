"""Video speed: frames per second of ``facemtl video``'s per-frame work on the shared videos.

    python scripts/bench_video.py [--model M.onnx] [--shared ../shared] [--size 640x360] [--threads 2]
                                  [--runs 5] [--detect-every 5] [--annotate] [--no-smooth]

Every ``../shared/data/videos/*.mp4`` is decoded once and resized to ``--size`` (default
640x360, the issue's target size) into memory, so that the figure does not depend on the source
resolution; then each run tracks and analyses all its frames with a fresh
:class:`facemtl.infer.tracking.FaceTracker` (detection every ``--detect-every`` frames,
One-Euro smoothing) and, with ``--annotate``, draws them and encodes an mp4 to a temporary
file. Prints fps per run and min / median / max over runs, per video and over all frames.

Until ``facemtl/assets/default.onnx`` ships, pass any contract model, e.g. the tests' stub:
``python -c "import sys; sys.path.insert(0, 'tests'); from onnx_stub import build_model;
build_model('/tmp/stub.onnx')"`` (its analysis costs next to nothing, so the figure then
measures detection, cropping, tracking and smoothing only).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def load_frames(path: Path, size: tuple[int, int]) -> list[np.ndarray]:
    """All frames of a video, resized to ``size`` (width, height)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        sys.exit(f"error: {path}: cannot open as a video")
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if (frame.shape[1], frame.shape[0]) != size:
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        frames.append(frame)
    return frames


def run_once(analyzer, frames: list[np.ndarray], fps: float, args: argparse.Namespace) -> tuple[float, int, int]:
    """(frames per second, face rows, detector runs) of one pass over ``frames``."""
    from facemtl.infer.tracking import FaceTracker
    from facemtl.infer.video import annotate

    detector, calls = analyzer.detector, [0]

    def counted(image):
        calls[0] += 1
        return detector(image)

    analyzer.detector = counted
    tracker = FaceTracker(analyzer, detect_every=args.detect_every, smooth=args.smooth)
    rows = 0
    with tempfile.TemporaryDirectory() as tmp:
        writer = None
        if args.annotate:
            h, w = frames[0].shape[:2]
            writer = cv2.VideoWriter(str(Path(tmp) / "out.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        start = time.perf_counter()
        for k, frame in enumerate(frames):
            faces = tracker(frame, k / fps)
            rows += len(faces)
            if writer is not None:
                writer.write(annotate(frame.copy(), faces))
        if writer is not None:
            writer.release()
        seconds = time.perf_counter() - start
    analyzer.detector = detector
    return len(frames) / seconds, rows, calls[0]


def summary(values: list[float]) -> str:
    return f"min {min(values):.1f} / median {statistics.median(values):.1f} / max {max(values):.1f} fps"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="ONNX model (default: the shipped default.onnx)")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="root of the shared data")
    parser.add_argument("--size", default="640x360", help="frame size WxH the videos are resized to")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--detect-every", type=int, default=5)
    parser.add_argument("--detector", default="mos")
    parser.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                        help="the analyzer's flip averaging (default on, as FaceAnalyzer)")
    parser.add_argument("--annotate", action="store_true", help="also draw and encode an mp4 (temporary file)")
    args = parser.parse_args(argv)

    from facemtl.infer import FaceAnalyzer

    size = tuple(int(v) for v in args.size.lower().split("x"))
    videos = sorted((args.shared / "data" / "videos").glob("*.mp4"))
    if not videos:
        sys.exit(f"error: no videos in {args.shared / 'data' / 'videos'}")
    analyzer = FaceAnalyzer(args.model, detector=args.detector, threads=args.threads, flip=args.flip)
    print(f"model {analyzer.model_path.name} ({analyzer.model_name}, input {analyzer.input_size}, flip "
          f"averaging {'on' if args.flip else 'off'}), detector {args.detector}, {args.threads} threads, "
          f"{size[0]}x{size[1]}, detect every {args.detect_every}, smooth {args.smooth}, "
          f"annotate {args.annotate}, {args.runs} runs")
    totals = [0.0] * args.runs  # seconds per run over all videos
    n_total = 0
    for video in videos:
        frames = load_frames(video, size)
        fps_in = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS) or 30.0
        run_once(analyzer, frames[:10], fps_in, args)  # warm-up
        results = [run_once(analyzer, frames, fps_in, args) for _ in range(args.runs)]
        rates = [r[0] for r in results]
        for i, rate in enumerate(rates):
            totals[i] += len(frames) / rate
        n_total += len(frames)
        _, rows, calls = results[0]
        print(f"{video.name}: {len(frames)} frames, {rows / len(frames):.2f} faces/frame, detector on "
              f"{calls} frames; {summary(rates)}")
    print(f"all videos ({n_total} frames): {summary([n_total / s for s in totals])}")


if __name__ == "__main__":
    main()

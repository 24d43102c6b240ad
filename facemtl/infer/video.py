"""``facemtl video``: faces of a video file or a live camera, tracked, smoothed, drawn and written to CSV.

``facemtl video IN [--out OUT.mp4] [--csv OUT.csv]`` or ``facemtl video --camera N ...``.
Each frame goes through :class:`~facemtl.infer.tracking.FaceTracker` (stable face ids, detection
every ``--detect-every`` frames, One-Euro smoothing unless ``--no-smooth``).

CSV (like OpenFace's): one row per face per frame, written and flushed frame by frame. Columns:
``frame`` (0-based index in the video), ``time_s`` (the frame's timestamp; camera: seconds since
the start), ``face_id``, ``detected`` (1 if the detector found the face in this frame, 0 if it
was followed from the previous one), ``score`` (last detector score), ``presence`` (the model's
probability that the crop holds a face; empty for a model without it), ``x1, y1, x2, y2`` (box,
pixels), ``yaw, pitch, roll`` (degrees, ``Pose_Para`` convention), ``yaw_std, pitch_std,
roll_std`` (pose uncertainty, degrees), ``expression`` (label), ``p_<name>`` per expression,
``x_0 .. x_67``, ``y_0 .. y_67`` (iBUG-68 landmarks, pixels), ``v_0 .. v_67`` (visibility
probabilities). A head the model lacks leaves its cells empty.

Outputs stay valid if the run stops early: the CSV holds every finished frame at any time; the
video is written to ``OUT.partial.mp4`` (same folder) and renamed to ``OUT`` once finalised,
also after Ctrl+C, SIGTERM or an error. So ``OUT`` is always a complete, playable file or not
there at all (a killed process, SIGKILL, leaves only the ``.partial`` file, which an mp4 cannot
be read from without its final index).

Unreadable frames are skipped with a warning and counted; a video that stops before its
announced frame count ends the run with a warning; a file that cannot be opened is an error
naming it. A progress bar (on a terminal only) and a final line with frames per second go to stderr.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Iterator, Optional, Union

import cv2
import numpy as np

from facemtl.contract import LANDMARK_COLUMNS, N_LANDMARKS, expression_columns
from facemtl.infer.detector import add_detector_arguments, analyzer_settings
from facemtl.progress import Progress

if TYPE_CHECKING:
    from facemtl.infer.analyzer import FaceAnalyzer
    from facemtl.infer.tracking import TrackedFace

# Failed reads in a row after which a file (or camera) is taken as ended.
MAX_FAILED_READS = 25


class VideoError(ValueError):
    """A video or camera could not be opened or read; the message names it and the problem."""

    def __init__(self, source: Union[str, Path, int], problem: str):
        self.source = source
        self.problem = problem
        name = f"camera {source}" if isinstance(source, int) else str(source)
        super().__init__(f"{name}: {problem}")


@dataclass
class VideoSummary:
    """What :func:`process_video` did."""

    frames: int = 0  # frames analysed
    skipped: int = 0  # unreadable frames skipped
    expected: Optional[int] = None  # frame count announced by the file
    ended_early: bool = False  # the file stopped before ``expected`` frames
    interrupted: bool = False  # stopped by Ctrl+C / SIGTERM
    rows: int = 0  # face rows (faces summed over frames)
    ids: int = 0  # distinct face ids
    seconds: float = 0.0  # wall time

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def open_video(source: Union[str, Path, int]) -> cv2.VideoCapture:
    """An opened ``cv2.VideoCapture`` of a file or a camera index; :class:`VideoError` otherwise."""
    if isinstance(source, int):
        cap = cv2.VideoCapture(source)
        if not cap.isOpened():
            raise VideoError(source, "cannot open the camera (no such device, or it is busy)")
        return cap
    path = Path(source)
    if not path.is_file():
        raise VideoError(path, "file not found")
    if path.stat().st_size == 0:
        raise VideoError(path, "file is empty (0 bytes)")
    problem = _not_a_video(path)
    if problem:
        raise VideoError(path, problem)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoError(path, "cannot open as a video (not a video file, unsupported codec, or truncated)")
    return cap


def _not_a_video(path: Path) -> Optional[str]:
    """Why ``path`` is clearly not a video (text, a still image), else None. FFmpeg "plays" a
    text file as ANSI art and an image as one frame, which would silently give no faces."""
    from facemtl.io import _HEADER_BYTES, _header_size

    with open(path, "rb") as f:
        head = f.read(_HEADER_BYTES)  # a JPEG's size comes after its metadata segments
    if _header_size(head) is not None:
        return "is a still image, not a video (use facemtl predict)"
    start = head[:4096]
    if all(32 <= b < 127 or b in b"\t\n\r\f" for b in start.rstrip(b"\0")) or start.startswith(b"\xef\xbb\xbf"):
        return "is a text file, not a video"
    return None


def read_frames(cap: cv2.VideoCapture, source: Union[str, Path, int],
                summary: VideoSummary) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(frame index, time in seconds, BGR frame)`` of each readable frame.

    Unreadable frames are skipped with a warning (counted in ``summary.skipped``);
    :data:`MAX_FAILED_READS` failures in a row end the video (``summary.ended_early`` when the
    file announced more frames).
    """
    camera = isinstance(source, int)
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    summary.expected = None if camera or count <= 0 else count
    start, index, failed, read, last_t = time.monotonic(), 0, 0, 0, -1.0
    while True:
        ok, frame = cap.read()
        if not ok or frame is None or frame.size == 0:
            failed += 1
            # A file is over at its announced end (or at the first failure if it announced none).
            if failed >= MAX_FAILED_READS or (not camera and (summary.expected is None or index >= summary.expected)):
                break
            index += 1
            continue
        if failed:
            _warn(f"{_name(source)}: skipped {failed} unreadable frame(s) before frame {index}")
            summary.skipped += failed
            failed = 0
        if camera:
            t = time.monotonic() - start
        else:
            # The container's timestamp (exact for variable frame rates), else index / fps.
            t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if not t > last_t:
                t = index / fps if fps > 0 else float(index)
        last_t = t
        read += 1
        yield index, t, frame
        index += 1
    if summary.expected is not None and read + summary.skipped < summary.expected:
        summary.ended_early = True
        _warn(f"{_name(source)}: video ended after {read} readable of {summary.expected} announced "
              f"frames (truncated or broken)")


def csv_columns(expressions: tuple[str, ...]) -> list[str]:
    """The CSV header (module docstring)."""
    return (["frame", "time_s", "face_id", "detected", "score", "presence", "x1", "y1", "x2", "y2", "yaw", "pitch",
             "roll", "yaw_std", "pitch_std", "roll_std", "expression"] + expression_columns(expressions)
            + LANDMARK_COLUMNS)


def _cells(values: Optional[np.ndarray], n: int, digits: int) -> list[str]:
    if values is None:
        return [""] * n
    return [f"{v:.{digits}f}" if np.isfinite(v) else "" for v in np.asarray(values, dtype=np.float64).ravel()]


def csv_row(frame: int, t: float, tracked: TrackedFace, n_expressions: int) -> list[str]:
    """One CSV row of :func:`csv_columns` for a tracked face."""
    f = tracked.face
    pose = f.pose
    return ([str(frame), f"{t:.4f}", str(tracked.id), str(int(tracked.detected)), f"{f.score:.4f}"]
            + _cells(None if f.presence is None else [f.presence], 1, 4)
            + _cells(f.box, 4, 2)
            + _cells(None if pose is None else pose.ypr, 3, 3)
            + _cells(None if pose is None else pose.uncertainty, 3, 3)
            + ["" if f.expression is None else f.expression.label]
            + _cells(None if f.expression is None else f.expression.probs, n_expressions, 4)
            + _cells(None if f.landmarks is None else f.landmarks.T, 2 * N_LANDMARKS, 2)
            + _cells(f.visibility, N_LANDMARKS, 4))


def annotate(image: np.ndarray, faces: list[TrackedFace]) -> np.ndarray:
    """A copy of the frame with each face drawn as ``facemtl predict`` draws it, its track id first."""
    from facemtl.infer.predict import draw_faces

    return draw_faces(image, [t.face for t in faces], [f"#{t.id} " for t in faces])


def process_video(source: Union[str, Path, int], analyzer: FaceAnalyzer, out: Optional[Union[str, Path]] = None,
                  csv_path: Optional[Union[str, Path]] = None, smooth: bool = True, detect_every: int = 5,
                  max_frames: Optional[int] = None, progress: bool = True) -> VideoSummary:
    """Track and analyse the faces of a video file (or camera index) into an annotated video and a CSV.

    See the module docstring for the outputs and their guarantees. Raises :class:`VideoError`
    when the source cannot be opened; Ctrl+C stops cleanly (``summary.interrupted``).
    """
    from facemtl.infer.tracking import FaceTracker

    cap = open_video(source)
    summary = VideoSummary()
    tracker = FaceTracker(analyzer, detect_every=detect_every, smooth=smooth)
    writer: Optional[_VideoOutput] = None
    table: Optional[IO[str]] = None
    ids: set[int] = set()
    start = time.monotonic()
    bar = None
    try:
        if progress:  # the bar needs the announced frame count, known once reading starts
            bar = Progress(None, _name(source), unit="frame")
        for index, t, frame in read_frames(cap, source, summary):
            if bar is not None and bar.total is None:
                bar.total = summary.expected
            faces = tracker(frame, t)
            if csv_path is not None and table is None:  # opened at the first frame: no frame, no file
                table = open(csv_path, "w", newline="")
                rows = csv.writer(table)
                rows.writerow(csv_columns(analyzer.expressions))
            if table is not None:
                rows.writerows(csv_row(index, t, f, len(analyzer.expressions)) for f in faces)
                table.flush()
            if out is not None:
                drawn = annotate(frame, faces)
                if writer is None:
                    writer = _VideoOutput(Path(out), frame.shape[1], frame.shape[0], _fps(cap))
                writer.write(drawn)
            summary.frames += 1
            summary.rows += len(faces)
            ids.update(f.id for f in faces)
            if bar is not None:
                bar.update(1, f"{len(faces)} face(s)")
            if max_frames is not None and summary.frames >= max_frames:
                break
    except KeyboardInterrupt:
        summary.interrupted = True
        _warn(f"{_name(source)}: interrupted after {summary.frames} frames; finishing the outputs")
    finally:
        if bar is not None:
            bar.close()
        cap.release()
        if table is not None:
            table.close()
        if writer is not None:
            writer.close()
        summary.ids = len(ids)
        summary.seconds = time.monotonic() - start
    if progress:
        _progress(source, summary, summary.seconds)
    if summary.frames == 0 and not summary.interrupted and not isinstance(source, int):
        raise VideoError(source, "no readable frame (not a video, an unsupported codec, or broken)")
    return summary


class _VideoOutput:
    """An mp4v video written to ``<stem>.partial<suffix>`` and renamed to its name by :meth:`close`."""

    def __init__(self, path: Path, width: int, height: int, fps: float):
        self.path, self.size, self.frames = path, (width, height), 0
        self.partial = path.with_name(f"{path.stem}.partial{path.suffix or '.mp4'}")
        self.writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*"mp4v"), fps, self.size)
        if not self.writer.isOpened():
            raise VideoError(path, "cannot write the video (folder missing or not writable, or no mp4v encoder)")

    def write(self, frame: np.ndarray) -> None:
        if (frame.shape[1], frame.shape[0]) != self.size:  # a stream whose size changes mid-way
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        """Finish the file; with no frame written (interrupted at once) there is no video: no file."""
        self.writer.release()
        if self.frames:
            os.replace(self.partial, self.path)
        else:
            self.partial.unlink(missing_ok=True)


def _fps(cap: cv2.VideoCapture) -> float:
    fps = cap.get(cv2.CAP_PROP_FPS)
    return fps if fps and 1 <= fps <= 240 else 30.0


def _name(source: Union[str, Path, int]) -> str:
    return f"camera {source}" if isinstance(source, int) else str(source)


def _warn(message: str) -> None:
    # Start a new line if a progress line is being rewritten in place.
    print(f"{chr(10) if sys.stderr.isatty() else ''}warning: {message}", file=sys.stderr, flush=True)


def _progress(source: Union[str, Path, int], s: VideoSummary, elapsed: float) -> None:
    """The final summary line."""
    fps = s.frames / elapsed if elapsed > 0 else 0.0
    end = " (interrupted)" if s.interrupted else " (ended early)" if s.ended_early else ""
    print(f"{_name(source)}: {s.frames} frames{end}, {s.skipped} skipped, {s.rows} face rows, "
          f"{s.ids} face ids, {fps:.1f} fps", file=sys.stderr, flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", nargs="?", type=Path, help="video file (or use --camera)")
    parser.add_argument("--camera", type=int, metavar="N", help="live camera index instead of a file (Ctrl+C stops)")
    parser.add_argument("--out", type=Path, help="annotated video (.mp4, mp4v codec); written as OUT.partial.mp4 "
                                                 "and renamed when finished (also on Ctrl+C), so OUT is always complete")
    parser.add_argument("--csv", type=Path,
                        help="one row per face per frame, written and flushed frame by frame: frame, time_s, face_id, "
                             "detected, score, presence, x1..y2, yaw, pitch, roll, *_std, expression, p_<name>, "
                             "x_i, y_i, v_i (i = 0..67)")
    parser.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=True,
                        help="One-Euro smoothing of landmarks, box and pose per face id (default: on)")
    parser.add_argument("--detect-every", type=int, default=5, metavar="N",
                        help="run the detector every N frames (and when a face is lost); in between, "
                             "faces are followed from their landmarks (default: 5)")
    parser.add_argument("--model", type=Path, help="ONNX model (default: the shipped facemtl/assets/default.onnx)")
    add_detector_arguments(parser)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default: 2)")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")


def run(args: argparse.Namespace) -> int:
    from facemtl.infer.analyzer import FaceAnalyzer
    from facemtl.io import FileError

    if (args.input is None) == (args.camera is None):
        print("error: give a video file or --camera N (not both)", file=sys.stderr)
        return 2
    if args.out is None and args.csv is None:
        print("note: no --out or --csv given: faces are analysed but nothing is written", file=sys.stderr)
    if args.detect_every < 1:
        print(f"error: --detect-every must be >= 1, not {args.detect_every}", file=sys.stderr)
        return 2
    # SIGTERM stops like Ctrl+C, so the outputs are finished properly.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        analyzer = FaceAnalyzer(**analyzer_settings(args))
        summary = process_video(args.camera if args.input is None else args.input, analyzer, out=args.out,
                                csv_path=args.csv, smooth=args.smooth, detect_every=args.detect_every,
                                max_frames=args.max_frames)
    except (VideoError, FileError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    for path in (args.out, args.csv):
        if path is not None and summary.frames:
            print(f"wrote {path}", file=sys.stderr)
    return 130 if summary.interrupted else 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt

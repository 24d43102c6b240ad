"""``facemtl video`` / ``process_video`` on clips written here (moving squares, stub ONNX model), on
truncated and broken files, on interruption, and on a few frames of the shared real videos."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from facemtl.cli import main
from facemtl.contract import EXPRESSIONS
from facemtl.infer import FaceAnalyzer
from facemtl.infer.video import VideoError, VideoSummary, csv_columns, process_video, read_frames
from onnx_stub import BlobDetector, build_model, squares_frame

FPS = 10


def write_clip(path: Path, n: int = 30, fourcc: str = "mp4v") -> Path:
    """``n`` frames at 10 fps: a square moving right (3 px/frame) above one moving left (2 px/frame)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (160, 120))
    assert writer.isOpened()
    for k in range(n):
        writer.write(squares_frame([(10 + 3 * k, 15, 30), (120 - 2 * k, 70, 26)]))
    writer.release()
    return path


def count_frames(path: Path) -> tuple[int, tuple[int, int]]:
    """Frames decodable from a video file, and its (width, height)."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open"
    size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    n = 0
    while cap.read()[0]:
        n += 1
    return n, size


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


@pytest.fixture(scope="module")
def stub(tmp_path_factory) -> Path:
    return build_model(tmp_path_factory.mktemp("stub") / "stub.onnx")


def test_clip_to_csv_and_video(tmp_path, stub):
    clip = write_clip(tmp_path / "clip.mp4")
    analyzer = FaceAnalyzer(stub, detector=BlobDetector(), flip=False)
    summary = process_video(clip, analyzer, out=tmp_path / "out.mp4", csv_path=tmp_path / "out.csv",
                            detect_every=4, progress=False)
    assert (summary.frames, summary.skipped, summary.expected, summary.rows, summary.ids) == (30, 0, 30, 60, 2)
    assert not summary.ended_early and not summary.interrupted
    header, rows = read_csv(tmp_path / "out.csv")
    assert header == csv_columns(EXPRESSIONS)
    assert len(header) == 17 + 7 + 3 * 68
    assert header[:6] == ["frame", "time_s", "face_id", "detected", "score", "presence"] and header[-1] == "v_67"
    assert [int(r["frame"]) for r in rows] == [k // 2 for k in range(60)]
    for r in rows:
        k, face = int(r["frame"]), int(r["face_id"])
        assert float(r["time_s"]) == pytest.approx(k / FPS, abs=1e-3)  # container timestamps
        assert r["detected"] == ("1" if k % 4 == 0 else "0")
        assert float(r["score"]) == pytest.approx(0.9)
        # Face 0 is the upper square moving right, face 1 the lower one moving left (ids never swap).
        x, y, side = (10 + 3 * k, 15, 30) if face == 0 else (120 - 2 * k, 70, 26)
        box = np.array([float(r[c]) for c in ("x1", "y1", "x2", "y2")])
        np.testing.assert_allclose(box, [x - 0.5, y - 0.5, x + side + 0.5, y + side + 0.5], atol=1.5)
        landmarks = np.array([[float(r[f"x_{i}"]), float(r[f"y_{i}"])] for i in range(68)])
        np.testing.assert_allclose([landmarks.min(0), landmarks.max(0)], [box[:2], box[2:]], atol=0.02)
        np.testing.assert_allclose([float(r[f"v_{i}"]) for i in range(68)], np.linspace(0, 1, 68), atol=1e-4)
        assert [r["yaw_std"], r["pitch_std"], r["roll_std"]] == ["1.000", "2.000", "3.000"]
        probs = np.array([float(r[f"p_{n}"]) for n in EXPRESSIONS])
        assert probs.sum() == pytest.approx(1, abs=1e-3) and r["expression"] == EXPRESSIONS[probs.argmax()]
    assert count_frames(tmp_path / "out.mp4") == (30, (160, 120))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out.csv", "out.mp4"]  # no .partial left


def test_cli_without_faces_and_no_smooth(tmp_path, stub, capsys):
    clip = write_clip(tmp_path / "clip.mp4", n=12)
    # The OpenCV cascades find no face among squares: a header-only CSV, a full video. (The default
    # MOS detector d749e638 scored one of these textured squares 0.25-0.50, 0.50 in one frame of 12.)
    rc = main(["video", str(clip), "--out", str(tmp_path / "o.mp4"), "--csv", str(tmp_path / "o.csv"),
               "--model", str(stub), "--no-smooth", "--detect-every", "3", "--detector", "opencv"])
    assert rc == 0
    header, rows = read_csv(tmp_path / "o.csv")
    assert header == csv_columns(EXPRESSIONS) and rows == []
    assert count_frames(tmp_path / "o.mp4") == (12, (160, 120))
    err = capsys.readouterr().err
    assert "12 frames, 0 skipped, 0 face rows" in err and "fps" in err


def test_bad_sources_give_clear_errors(tmp_path, stub, capsys):
    analyzer = FaceAnalyzer(stub, detector=BlobDetector())
    with pytest.raises(VideoError, match=r"missing\.mp4: file not found"):
        process_video(tmp_path / "missing.mp4", analyzer)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match=r"empty\.mp4: file is empty"):
        process_video(tmp_path / "empty.mp4", analyzer)
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(VideoError, match=r"text\.mp4: is a text file, not a video"):
        process_video(tmp_path / "text.mp4", analyzer)
    # An mp4 cut in half has lost its index (written last): a clean error, and no output file.
    data = write_clip(tmp_path / "clip.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    rc = main(["video", str(tmp_path / "cut.mp4"), "--out", str(tmp_path / "o.mp4"), "--model", str(stub)])
    assert rc == 1
    assert f"{tmp_path / 'cut.mp4'}: cannot open as a video" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "o.partial.mp4").exists()
    assert main(["video", "--model", str(stub)]) == 2  # neither a file nor --camera
    assert main(["video", "--camera", "99", "--model", str(stub)]) == 1
    assert "camera 99: cannot open the camera" in capsys.readouterr().err


def test_truncated_avi_ends_early_with_valid_outputs(tmp_path, stub, capsys):
    data = write_clip(tmp_path / "clip.avi", fourcc="MJPG").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    analyzer = FaceAnalyzer(stub, detector=BlobDetector())
    summary = process_video(tmp_path / "cut.avi", analyzer, out=tmp_path / "o.mp4", csv_path=tmp_path / "o.csv",
                            progress=False)
    assert summary.ended_early and summary.expected == 30 and 5 < summary.frames < 30
    assert "video ended after" in capsys.readouterr().err
    _, rows = read_csv(tmp_path / "o.csv")
    assert len(rows) == 2 * summary.frames and int(rows[-1]["frame"]) == summary.frames - 1
    assert count_frames(tmp_path / "o.mp4") == (summary.frames, (160, 120))


class ScriptedCapture:
    """A stand-in for cv2.VideoCapture whose reads succeed or fail as scripted."""

    def __init__(self, script: str, announced: int, msec_per_frame: float = 40.0):
        self.script, self.announced, self.msec = script, announced, msec_per_frame
        self.pos = 0

    def read(self):
        ok = self.pos < len(self.script) and self.script[self.pos] == "1"
        self.pos += 1
        return (True, np.zeros((4, 4, 3), np.uint8)) if ok else (False, None)

    def get(self, prop):
        return {cv2.CAP_PROP_FPS: 25.0, cv2.CAP_PROP_FRAME_COUNT: self.announced,
                cv2.CAP_PROP_POS_MSEC: (self.pos - 1) * self.msec}[prop]


def test_read_frames_skips_broken_frames_and_detects_early_end(capsys):
    summary = VideoSummary()
    got = [(i, t) for i, t, _ in read_frames(ScriptedCapture("11011001", 8), "v.mp4", summary)]
    assert got == [(0, 0.0), (1, 0.04), (3, 0.12), (4, 0.16), (7, 0.28)]  # frame index and timestamp kept
    assert summary.skipped == 3 and not summary.ended_early
    assert "v.mp4: skipped 2 unreadable frame(s) before frame 7" in capsys.readouterr().err
    # The file stops 4 frames before its announced end.
    summary = VideoSummary()
    assert [i for i, _, _ in read_frames(ScriptedCapture("111111", 10), "v.mp4", summary)] == list(range(6))
    assert summary.ended_early and "ended after 6 readable of 10 announced frames" in capsys.readouterr().err
    # No usable container timestamps: index / fps.
    summary = VideoSummary()
    times = [t for _, t, _ in read_frames(ScriptedCapture("111", 3, msec_per_frame=0.0), "v.mp4", summary)]
    assert times == pytest.approx([0.0, 0.04, 0.08])


def test_interrupt_finishes_outputs(tmp_path, stub, capsys):
    clip = write_clip(tmp_path / "clip.mp4")
    # Ctrl+C during the detector's 3rd run (frame 10 with detection every 5 frames).
    analyzer = FaceAnalyzer(stub, detector=BlobDetector(raise_on_call=(3, KeyboardInterrupt())))
    summary = process_video(clip, analyzer, out=tmp_path / "o.mp4", csv_path=tmp_path / "o.csv", detect_every=5,
                            progress=False)
    assert summary.interrupted and summary.frames == 10
    assert "interrupted after 10 frames" in capsys.readouterr().err
    _, rows = read_csv(tmp_path / "o.csv")
    assert [int(r["frame"]) for r in rows] == [k // 2 for k in range(20)]
    assert count_frames(tmp_path / "o.mp4") == (10, (160, 120))
    assert not (tmp_path / "o.partial.mp4").exists()


def test_shared_videos_first_frames(shared, stub, tmp_path):
    videos = sorted((shared / "data" / "videos").glob("*.mp4"))
    assert len(videos) == 3
    for video in videos:
        out, table = tmp_path / f"{video.stem}.mp4", tmp_path / f"{video.stem}.csv"
        assert main(["video", str(video), "--out", str(out), "--csv", str(table), "--model", str(stub),
                     "--max-frames", "4"]) == 0
        cap = cv2.VideoCapture(str(video))
        size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        assert count_frames(out) == (4, size)
        header, rows = read_csv(table)
        assert header == csv_columns(EXPRESSIONS)
        for r in rows:
            assert 0 <= int(r["frame"]) < 4
            x1, y1, x2, y2 = (float(r[c]) for c in ("x1", "y1", "x2", "y2"))
            assert x1 < x2 and y1 < y2


def test_sigterm_finishes_outputs(tmp_path, stub):
    import signal
    import subprocess
    import sys
    import time

    clip = write_clip(tmp_path / "long.mp4", n=1500)
    out = tmp_path / "o.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "facemtl.cli", "video", str(clip), "--out", str(out), "--csv",
                             str(tmp_path / "o.csv"), "--model", str(stub), "--detect-every", "1"],
                            stderr=subprocess.PIPE, text=True)
    partial = tmp_path / "o.partial.mp4"
    deadline = time.monotonic() + 30
    while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # some frames in: the file appears as the first one is written
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted after" in err
    n, size = count_frames(out)
    assert 0 < n < 1500 and size == (160, 120)
    assert not partial.exists()


def test_video_output_without_a_frame_leaves_no_file(tmp_path):
    """Interrupted before its first frame, the writer leaves neither the video nor its partial file
    (an mp4 without frames does not open)."""
    from facemtl.infer.video import _VideoOutput

    empty = _VideoOutput(tmp_path / "e.mp4", 64, 48, 25.0)
    empty.close()
    assert not (tmp_path / "e.mp4").exists() and not (tmp_path / "e.partial.mp4").exists()
    one = _VideoOutput(tmp_path / "o.mp4", 64, 48, 25.0)
    one.write(np.zeros((48, 64, 3), np.uint8))
    one.close()
    assert count_frames(tmp_path / "o.mp4") == (1, (64, 48))

"""``facemtl video`` on files that are not videos (issue 13.6): an error naming the file, exit 1,
nothing written."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from facemtl.cli import main
from facemtl.infer.video import VideoError, open_video


@pytest.mark.parametrize("name, make", [
    ("licence.mp4", lambda p, s: shutil.copy(s / "data" / "format-samples" / "dlib-faces" / "dlib_LICENSE.txt", p)),
    ("notes.txt", lambda p, s: p.write_text("frame 1\nframe 2\n" * 200)),
    ("photo.mp4", lambda p, s: shutil.copy(s / "data" / "photos" / "img1.jpg", p)),
    ("photo.png", lambda p, s: cv2.imwrite(str(p), np.zeros((40, 60, 3), np.uint8))),
])
def test_not_a_video_is_an_error_naming_the_file(tmp_path, shared, capsys, name, make):
    path = tmp_path / name
    make(path, shared)
    out, table = tmp_path / "out.mp4", tmp_path / "out.csv"
    assert main(["video", str(path), "--out", str(out), "--csv", str(table)]) == 1
    err = capsys.readouterr().err
    assert f"error: {path}: is a " in err and "not a video" in err
    assert not out.exists() and not table.exists() and not (tmp_path / "out.partial.mp4").exists()


def test_no_readable_frame_is_an_error(tmp_path, monkeypatch):
    import facemtl.infer.video as video

    class NoFrames:  # a container FFmpeg opens that yields nothing
        def isOpened(self):
            return True

        def read(self):
            return False, None

        def get(self, prop):
            return 0.0

        def release(self):
            pass

    path = tmp_path / "odd.bin"
    path.write_bytes(bytes(range(256)) * 8)
    monkeypatch.setattr(video.cv2, "VideoCapture", lambda *a: NoFrames())
    from facemtl.infer import FaceAnalyzer

    with pytest.raises(VideoError, match=r"odd\.bin: no readable frame"):
        video.process_video(path, FaceAnalyzer(), csv_path=tmp_path / "o.csv", progress=False)
    assert not (tmp_path / "o.csv").exists()
    assert open_video(path).isOpened()

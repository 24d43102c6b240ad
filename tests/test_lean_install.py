"""The inference-only install (issue 13.5): importing facemtl and analysing photos and video
frames loads neither scipy nor matplotlib (nor torch), so the base dependencies can leave them out."""

from __future__ import annotations

import subprocess
import sys

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("scipy", "matplotlib", "torch")


def test_inference_path_imports_no_scipy_matplotlib_torch(shared):
    photo = shared / "data" / "photos" / "img1.jpg"
    video = shared / "data" / "videos" / "3ddfa_obama.mp4"
    code = f"""
import sys
import facemtl
from facemtl.infer.video import process_video
faces = facemtl.FaceAnalyzer()({str(photo)!r})
assert faces, "no face found"
summary = process_video({str(video)!r}, facemtl.FaceAnalyzer(), max_frames=3, progress=False)
assert summary.frames == 3 and summary.ids >= 1
print(",".join(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def test_base_dependencies_are_numpy_opencv_onnxruntime():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = sorted(d.split(">")[0].split("=")[0].split("<")[0] for d in project["dependencies"])
    assert names == ["numpy", "onnxruntime", "opencv-python-headless"]
    extras = project["optional-dependencies"]
    assert any(d.startswith("scipy") for d in extras["data"])
    assert any(d.startswith("matplotlib") for d in extras["train"])

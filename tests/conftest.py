"""Shared fixtures. Tests that need ``../shared`` skip cleanly on a machine without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACEMTL_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    """Root of the shared data (``../shared``); skips the test where it is absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def aflw2000_dev(shared: Path) -> Path:
    return shared / "data" / "aflw2000-dev"


@pytest.fixture(scope="session")
def ict_path(shared: Path) -> Path:
    """The ICT-FaceKit Light model file in the shared data; skips where it is absent."""
    p = shared / "facemodels" / "ict-facekit" / "ict_facekit_light.npz"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    return p


@pytest.fixture(scope="session")
def face_model(ict_path: Path):
    """The ICT face model in facemtl's head frame, loaded once for the whole run."""
    from facemtl.synth.facemodel import FaceModel

    return FaceModel.load(ict_path)


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run a module's torch work on one thread: on tiny tensors extra intra-op threads only contend
    (tens of times slower on a busy 2-core machine)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_main_onnx(tmp_path_factory) -> Path:
    """A small main model (``mtl_mobilenetv3_small``, width 0.5, 64 px, random weights) exported as ONNX."""
    torch = pytest.importorskip("torch")
    from facemtl.models import create_model
    from facemtl.models.export import export_onnx

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_main") / "m.onnx"
    export_onnx(create_model("mtl_mobilenetv3_small", width=0.5).eval(), path, 64, 1.5)
    return path

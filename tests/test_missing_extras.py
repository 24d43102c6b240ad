"""Commands that need an extra, run where it is not installed (issue 13.4): one line naming the
extra to install, exit status 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def without(packages: list[str], argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``facemtl argv`` with ``packages`` unimportable (as in an install without them)."""
    code = ("import sys\n"
            f"for name in {packages!r}: sys.modules[name] = None\n"
            "from facemtl.cli import main\n"
            f"sys.exit(main({argv!r}))\n")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv", [
    ["train", "--config", str(REPO / "configs" / "default.yaml")],
    ["export", "--checkpoint", "x.pt", "--onnx", "x.onnx"],
    ["eval", "--dataset", "aflw2000", "--root", "AFLW", "--model", "x.pt"],
])
def test_torch_commands_without_torch(tmp_path, argv):
    (tmp_path / "x.pt").write_bytes(b"not used")
    (tmp_path / "AFLW").mkdir()
    r = without(["torch"], argv, tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert lines[0].startswith(f"facemtl {argv[0]}: needs torch") and "pip install 'facemtl[train]'" in lines[0]
    assert "pip install -e '.[train]'" in lines[0]


def test_inference_commands_do_not_need_torch(tmp_path, shared):
    r = without(["torch", "matplotlib", "scipy"],
                ["predict", str(shared / "data" / "photos" / "img1.jpg"), "--json", "out.json"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.json").is_file()

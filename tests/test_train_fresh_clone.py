"""``facemtl train`` on a fresh clone (issue 13.3): a missing prepared input is one line naming the
command that makes it, exit status 2, no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def train(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "facemtl.cli", "train", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def clone(tmp_path, shared) -> Path:
    """A fresh clone's layout: configs/ and ../shared, no runs/."""
    project = tmp_path / "facemtl"
    shutil.copytree(REPO / "facemtl" / "configs", project / "configs")
    (tmp_path / "shared").symlink_to(shared, target_is_directory=True)
    return project


@pytest.mark.parametrize("config, missing, command", [
    ("configs/default.yaml", "runs/300wlp18/train", "facemtl profile ../shared/data/300w/afw"),
    ("default", "runs/300wlp18/train", "facemtl profile ../shared/data/300w/afw"),  # the shipped config by name
    ("configs/hopenet.yaml", "runs/profiled-lfw", "facemtl synth --profile"),
])
def test_missing_prepared_data_names_the_command(clone, config, missing, command):
    r = train(clone, "--config", config)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert lines[0].startswith(f"facemtl train: {missing} not found") and command in lines[0]


def test_missing_checkpoint_to_fine_tune_names_its_command(clone):
    (clone / "configs" / "ft.yaml").write_text(
        "model: mtl_mobilenetv3_small\ninit: runs/base/last.pt\ndata:\n  - {type: synth}\n"
        "prepare:\n  runs/base/last.pt: facemtl train --config configs/base.yaml\n")
    r = train(clone, "--config", "configs/ft.yaml")
    assert r.returncode == 2
    assert r.stderr.strip() == ("facemtl train: runs/base/last.pt not found (from ft's config); "
                                "make it first with: facemtl train --config configs/base.yaml")


def test_missing_path_without_a_command_and_bad_config(clone):
    (clone / "configs" / "mine.yaml").write_text("model: mtl_mobilenetv3_small\ndata:\n  - {type: dataset, "
                                                 "name: aflw2000, root: nowhere/aflw}\n")
    r = train(clone, "--config", "configs/mine.yaml")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "facemtl train: nowhere/aflw not found (from mine's config); give the right path in the config"]
    (clone / "configs" / "bad.yaml").write_text("model: x\nnot_a_key: 1\n")
    r = train(clone, "--config", "configs/bad.yaml")
    assert r.returncode == 2 and "not_a_key" in r.stderr and "Traceback" not in r.stderr


def test_expression_trainer_refuses_resume_instead_of_ignoring_it(clone):
    r = train(clone, "--config", "expression", "--resume")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "facemtl train: expression: the expression trainer runs in one go (it keeps no resumable checkpoint); "
        "--resume and --stop-at are not supported there"]


def test_cpu_only_trainer_refuses_another_device_before_any_work(clone):
    r = train(clone, "--config", "superres", "--device", "cuda", "--out", "runs/sr")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["facemtl train: superres: this trainer runs on the CPU only, not on 'cuda'"]
    assert not (clone / "runs" / "sr").exists()

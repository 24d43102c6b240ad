"""``facemtl study landmark-to-pose`` at small scale, on the generated set and on real AFLW2000 faces."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio

from facemtl.geometry.pnp import POINT_SUBSETS
from facemtl.io import FileError
from facemtl.tools import landmark_to_pose as study


def _run(tmp_path: Path, *argv: str) -> tuple[dict, str]:
    parser = argparse.ArgumentParser()
    study.add_arguments(parser)
    out = tmp_path / "out"
    args = parser.parse_args([*argv, "--json", str(tmp_path / "r.json"), "--out-dir", str(out),
                              "--repeats", "2", "--sigmas", "0,4,10", "--stretches=-0.3,0,0.3"])
    assert study.run(args) == 0
    for name in ("points.png", "jitter.png", "stretch.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return json.loads((tmp_path / "r.json").read_text()), (out / "study.md").read_text()


def _check_structure(r: dict) -> None:
    axes = ("yaw", "pitch", "roll", "mean")
    assert [p["subset"] for p in r["points"]] == list(POINT_SUBSETS)
    assert [p["n_points"] for p in r["points"]] == [len(v) for v in POINT_SUBSETS.values()]
    assert [j["sigma"] for j in r["jitter"]] == [0, 4, 10]
    assert [(s["axis"], s["stretch"]) for s in r["stretch"]] == [(a, s) for a in ("width", "height")
                                                                 for s in (-0.3, 0, 0.3)]
    rows = r["points"] + r["jitter"] + r["stretch"] + r["alignment"]["results"]
    for row in rows:
        assert all(math.isfinite(row[k]) and 0 <= row[k] < 90 for k in axes), row
        assert row["mean"] == pytest.approx(np.mean([row[k] for k in axes[:3]]))
    assert len(r["alignment"]["results"]) == 2 * len(POINT_SUBSETS)
    # sigma 0 is the plain 68-point run, and stretch 0 the same again
    p68 = next(p for p in r["points"] if p["subset"] == "68")
    assert r["jitter"][0]["mean"] == pytest.approx(p68["mean"]) and r["jitter"][0]["mean_std"] == 0
    assert all(s["mean"] == pytest.approx(p68["mean"]) for s in r["stretch"] if s["stretch"] == 0)
    # noise only hurts (the same unit draws are scaled for every sigma)
    assert r["jitter"][0]["mean"] < r["jitter"][1]["mean"] < r["jitter"][2]["mean"]


def test_generated_set(tmp_path):
    r, md = _run(tmp_path, "--n-synthetic", "40", "--seed", "3")
    _check_structure(r)
    d = r["dataset"]
    assert d["kind"] == "synthetic" and d["n_read"] == d["n_used"] == 40 and d["n_filtered"] == 0
    assert all(row["n_failed"] == 0 for row in r["points"])
    by = {p["subset"]: p for p in r["points"]}
    assert by["68"]["mean"] <= by["5"]["mean"]  # more points average out the shape differences
    # the faces are perturbed mean faces: the unstretched mean face fits best
    for axis in ("width", "height"):
        rows = {s["stretch"]: s["mean"] for s in r["stretch"] if s["axis"] == axis}
        assert rows[0] < rows[-0.3] and rows[0] < rows[0.3]
    # the set is generated with the aligned face, so ICT's own frontal reads the pitch offset back
    al = {(a["subset"], a["mean_face"]): a for a in r["alignment"]["results"]}
    offset_pitch = r["alignment"]["offset_ypr_deg"][1]
    assert al[("68", "aligned")]["mean"] < al[("68", "unaligned")]["mean"]
    assert np.sign(al[("68", "unaligned")]["bias"]["pitch"]) == np.sign(offset_pitch)
    assert "| fan12 | 12 |" in md and "## Landmark noise" in md and "| height | +30% |" in md


def test_aflw2000_dev(tmp_path, aflw2000_dev):
    r, md = _run(tmp_path, "--root", str(aflw2000_dev))
    _check_structure(r)
    mats = sorted(aflw2000_dev.glob("*.mat"))
    ypr = np.stack([np.rad2deg(sio.loadmat(str(m))["Pose_Para"][0, [1, 0, 2]]) for m in mats])
    outside = sorted(m.with_suffix(".jpg").name for m, y in zip(mats, ypr) if (np.abs(y) > 99).any())
    d = r["dataset"]
    assert d["kind"] == "aflw2000" and d["n_read"] == len(mats)
    assert sorted(d["filtered"]) == outside and d["n_used"] == len(mats) - len(outside)
    assert all(row["n_failed"] == 0 and row["n"] == d["n_used"] for row in r["points"])
    assert f"{d['n_used']} faces used of {len(mats)}" in md


def test_bad_input(tmp_path):
    parser = argparse.ArgumentParser()
    study.add_arguments(parser)
    with pytest.raises(FileError):
        study.run(parser.parse_args(["--root", str(tmp_path / "missing")]))
    with pytest.raises(KeyError, match="known"):
        study.run(parser.parse_args(["--n-synthetic", "3", "--subset", "nine"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--sigmas", "1,two"])

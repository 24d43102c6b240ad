"""Many images (issue 13.10): worker processes and Dask give the serial records in input order;
--skip-done resumes a partly written JSON or CSV without losing what it holds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from facemtl.cli import main
from facemtl.infer import batch


@pytest.fixture(scope="module")
def folder(shared, tmp_path_factory) -> Path:
    """Seven LFW photos and a corrupt file among them."""
    d = tmp_path_factory.mktemp("photos")
    for p in sorted((shared / "data" / "lfw").rglob("*.jpg"))[:7]:
        (d / p.name).symlink_to(p)
    (d / "B_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut")
    return d


@pytest.fixture(scope="module")
def serial(folder, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("serial") / "out.json"
    assert main(["predict", str(folder), "--json", str(out), "--threads", "1"]) == 1  # the broken file
    return json.loads(out.read_text())


def test_workers_give_the_serial_records_in_order(folder, serial, tmp_path):
    out = tmp_path / "out.json"
    assert main(["predict", str(folder), "--json", str(out), "--workers", "2", "--threads", "1"]) == 1
    assert json.loads(out.read_text()) == serial
    assert [r["image"] for r in serial] == sorted(r["image"] for r in serial)
    assert sum(r["error"] is not None for r in serial) == 1 and sum(len(r["faces"]) for r in serial) >= 7


def test_workers_use_the_same_analyzer_settings(folder, serial, tmp_path):
    """--score / --min-face reach the worker processes: their records equal the serial run's with
    the same options, and the options change the result (a face of most of the photo's side only)."""
    options = ["--score", "0.5", "--min-face", "0.45", "--threads", "1"]
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    assert main(["predict", str(folder), "--json", str(one), *options]) == 1
    assert main(["predict", str(folder), "--json", str(two), "--workers", "2", *options]) == 1
    assert json.loads(two.read_text()) == json.loads(one.read_text())
    n_faces = lambda records: sum(len(r["faces"]) for r in records)  # noqa: E731
    assert n_faces(json.loads(one.read_text())) < n_faces(serial)


def test_skip_done_resumes_a_cut_json(folder, serial, tmp_path, monkeypatch):
    out = tmp_path / "out.json"
    lines = [json.dumps(r) for r in serial[:4]]
    gone = {"image": "elsewhere/old.jpg", "width": 1, "height": 1, "faces": [], "error": None}
    text = "[\n" + ",\n".join([json.dumps(gone)] + lines) + ",\n"
    out.write_text(text + json.dumps(serial[4])[:50])  # killed while writing the 5th record
    analysed = []
    real = batch.analyse_one
    monkeypatch.setattr(batch, "analyse_one", lambda a, t: analysed.append(t.path) or real(a, t))
    assert main(["predict", str(folder), "--json", str(out), "--skip-done", "--threads", "1"]) == 1
    assert analysed == [r["image"] for r in serial[4:]]  # the cut record and the rest (the broken one too)
    assert json.loads(out.read_text()) == serial + [gone]  # nothing written before is lost


def test_skip_done_resumes_a_csv_keeping_its_rows(folder, serial, tmp_path, monkeypatch):
    table = tmp_path / "out.csv"
    assert main(["predict", str(folder), "--csv", str(table), "--threads", "1"]) == 1
    full = table.read_text()
    rows = full.splitlines(keepends=True)
    table.write_text("".join(rows[:4]) + rows[4][:40])  # three face rows and a cut one
    analysed = []
    real = batch.analyse_one
    monkeypatch.setattr(batch, "analyse_one", lambda a, t: analysed.append(t.path) or real(a, t))
    assert main(["predict", str(folder), "--csv", str(table), "--skip-done", "--threads", "1"]) == 1
    first = [r[0] for r in csv.reader(rows[1:4])]
    # The last complete image of the cut file is redone too: its rows may have been incomplete.
    assert len(analysed) == len(serial) - len(set(first)) + 1
    assert table.read_text() == full


def test_dask_local_cluster_gives_the_serial_records(folder, serial, tmp_path):
    pytest.importorskip("dask.distributed")
    out = tmp_path / "out.json"
    assert main(["predict", str(folder), "--json", str(out), "--dask", "local:2", "--threads", "1"]) == 1
    assert json.loads(out.read_text()) == serial

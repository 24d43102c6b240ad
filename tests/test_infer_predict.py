"""``facemtl predict``: JSON schema, CSV, --boxes, annotated images, bad files in a batch, atomic outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import facemtl.io as facemtl_io

pytest.importorskip("onnx")
from onnx_stub import build_model, face_layout  # noqa: E402

from facemtl.cli import main  # noqa: E402
from facemtl.infer import predict  # noqa: E402

FACE_KEYS = {"box", "score", "landmarks", "visibility", "pose", "expression", "flip_gap", "presence"}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_model(tmp_path_factory.mktemp("model") / "toy.onnx", follow=False)


@pytest.fixture
def folder(tmp_path) -> Path:
    """Two good images (one with a face-like blob) and the bad files of the issue."""
    d = tmp_path / "in"
    d.mkdir()
    cv2.imwrite(str(d / "a.png"), np.full((120, 160, 3), (148, 118, 138), np.uint8))
    cv2.imwrite(str(d / "b.jpg"), np.full((90, 100), 128, np.uint8))
    (d / "empty.jpg").write_bytes(b"")
    (d / "notes.png").write_text("this is text, not an image\n")
    ok, buf = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    (d / "truncated.jpg").write_bytes(buf.tobytes()[: len(buf) // 2])
    (d / "readme.txt").write_text("not listed: folders give their image files only")
    return d


def test_json_schema_and_boxes(tmp_path, folder, model, capsys):
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"a.png": [[40, 20, 100, 80], [0, 0, 30, 30]], "b.jpg": []}))
    out = tmp_path / "out.json"
    rc = main(["predict", str(folder / "a.png"), str(folder / "b.jpg"), "--model", str(model),
               "--boxes", str(boxes), "--json", str(out), "--no-flip"])
    assert rc == 0
    records = json.loads(out.read_text())
    assert [r["image"] for r in records] == [str(folder / "a.png"), str(folder / "b.jpg")]
    a, b = records
    assert set(a) == {"image", "width", "height", "faces", "error"}
    assert (a["width"], a["height"], a["error"]) == (160, 120, None)
    assert b["faces"] == [] and b["error"] is None  # [] in the boxes file: no face, no detection
    assert len(a["faces"]) == 2
    face = a["faces"][0]
    assert set(face) == FACE_KEYS
    # The toy layout fills the given (square) box exactly.
    np.testing.assert_allclose(face["box"], [40, 20, 100, 80], atol=1e-3)
    np.testing.assert_allclose(face["landmarks"], np.array([40, 20]) + face_layout() * 60, atol=1e-3)
    assert len(face["visibility"]) == 68 and face["score"] == 1.0
    assert set(face["pose"]) == {"yaw", "pitch", "roll", "matrix", "uncertainty"}
    assert (face["pose"]["yaw"], face["pose"]["pitch"], face["pose"]["roll"]) == pytest.approx((20, -10, 10), abs=1e-3)
    assert np.array(face["pose"]["matrix"]).shape == (3, 3) and face["pose"]["uncertainty"] == [1, 2, 3]
    assert set(face["expression"]) == {"label", "probs"}
    assert sum(face["expression"]["probs"].values()) == pytest.approx(1, abs=1e-3)
    assert face["expression"]["label"] == max(face["expression"]["probs"], key=face["expression"]["probs"].get)
    assert "2 images, 2 faces, 0 failed" in capsys.readouterr().err


def test_folder_with_bad_files_continues_and_reports(tmp_path, folder, model, capsys):
    out_dir, out_json, out_csv = tmp_path / "annotated", tmp_path / "r.json", tmp_path / "r.csv"
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"a.png": [[40, 20, 100, 80]]}))
    rc = main(["predict", str(folder), str(tmp_path / "missing.jpg"), "--model", str(model), "--boxes", str(boxes),
               "--json", str(out_json), "--csv", str(out_csv), "--out-dir", str(out_dir)])
    assert rc == 1
    records = {Path(r["image"]).name: r for r in json.loads(out_json.read_text())}
    assert sorted(records) == ["a.png", "b.jpg", "empty.jpg", "missing.jpg", "notes.png", "truncated.jpg"]
    assert records["empty.jpg"]["error"] == "file is empty (0 bytes)"
    assert "not a readable image" in records["notes.png"]["error"]
    assert "not a readable image" in records["truncated.jpg"]["error"]
    assert records["missing.jpg"]["error"] == "file not found"
    for bad in ("empty.jpg", "notes.png", "truncated.jpg", "missing.jpg"):
        assert records[bad]["faces"] == [] and records[bad]["width"] is None
    assert records["a.png"]["error"] is None and len(records["a.png"]["faces"]) == 1
    # b.jpg is a uniform grey image: detection runs and finds nothing.
    assert records["b.jpg"]["error"] is None and records["b.jpg"]["faces"] == []
    # Annotated images for the readable files only, same size as the input.
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.png", "b.jpg"]
    assert cv2.imread(str(out_dir / "a.png")).shape == (120, 160, 3)
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 1 + 4  # one face, four failed images
    face_row = next(r for r in rows if r["error"] == "")
    assert Path(face_row["image"]).name == "a.png" and float(face_row["x1"]) == pytest.approx(40, abs=1e-3)
    assert float(face_row["x_0"]) == pytest.approx(json.loads(out_json.read_text())[0]["faces"][0]["landmarks"][0][0])
    err = capsys.readouterr().err
    assert "6 images, 1 faces, 4 failed" in err and "empty.jpg: file is empty" in err


def test_outputs_already_written_stay_intact(tmp_path, folder, model, monkeypatch):
    out = tmp_path / "out.json"
    out.write_text("previous results\n")
    from facemtl.infer.analyzer import FaceAnalyzer

    calls = []

    def interrupted(self, image, boxes=None):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return []

    monkeypatch.setattr(FaceAnalyzer, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(["predict", str(folder), "--model", str(model), "--json", str(out)])
    assert out.read_text() == "previous results\n"
    # A failing rename leaves the old file and no temporary file behind.
    monkeypatch.setattr(facemtl_io.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        facemtl_io.write_atomic(out, b"new")
    assert out.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out.json"]


def test_inputs_globs_and_bad_arguments(tmp_path, folder, model, capsys):
    items = predict.expand_inputs([str(folder / "*.jpg"), str(folder / "b.jpg"), str(tmp_path / "*.gif"),
                                   str(tmp_path / "nothing")])
    names = [(Path(p).name, e) for p, e in items]
    assert names == [("b.jpg", None), ("empty.jpg", None), ("truncated.jpg", None),
                     ("*.gif", "no image file matches this pattern"), ("nothing", "file not found")]
    bad = tmp_path / "bad_boxes.json"
    bad.write_text(json.dumps({"a.png": [[1, 2, 3]]}))
    assert main(["predict", str(folder), "--model", str(model), "--boxes", str(bad)]) == 2
    assert "is not a list of [x1, y1, x2, y2] boxes" in capsys.readouterr().err
    assert main(["predict", str(folder), "--model", str(tmp_path / "none.onnx")]) == 2
    assert "model file not found" in capsys.readouterr().err
    # An invalid box is a per-file error, the other files go on.
    bad.write_text(json.dumps({"a.png": [[50, 50, 10, 10]]}))
    out = tmp_path / "o.json"
    assert main(["predict", str(folder / "a.png"), str(folder / "b.jpg"), "--model", str(model),
                 "--boxes", str(bad), "--json", str(out)]) == 1
    a, b = json.loads(out.read_text())
    assert "invalid box" in a["error"] and b["error"] is None


def test_stdout_json_without_outputs(folder, model, capsys):
    assert main(["predict", str(folder / "b.jpg"), "--model", str(model)]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records == [{"image": str(folder / "b.jpg"), "width": 100, "height": 90, "faces": [], "error": None}]


def test_real_photos_many_faces(shared, tmp_path, model):
    out = tmp_path / "o.json"
    photos = shared / "data" / "photos"
    rc = main(["predict", str(photos / "selfie-many-people.jpg"), str(photos / "img1.jpg"), "--model", str(model),
               "--json", str(out), "--out-dir", str(tmp_path / "ann")])
    assert rc == 0
    selfie, single = json.loads(out.read_text())
    assert len(selfie["faces"]) >= 3 and len(single["faces"]) >= 1
    for record in (selfie, single):
        for face in record["faces"]:
            x1, y1, x2, y2 = face["box"]
            assert 0 < x2 - x1 < record["width"] and 0 < y2 - y1 < record["height"]
    assert (tmp_path / "ann" / "selfie-many-people.jpg").is_file()

"""Dataset readers on files the tests write in each documented format, and on broken files."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io as sio

from facemtl.contract import EXPRESSIONS
from facemtl.data.aflw import AFLW21_NAMES, AFLW21_TO_68, read_aflw
from facemtl.data.afw import read_afw
from facemtl.data.biwi import read_biwi
from facemtl.data.coco_json import read_coco_json
from facemtl.data.cofw import COFW29_TO_68, read_cofw
from facemtl.data.dlib_xml import read_dlib_xml
from facemtl.data.mat3ddfa import read_300w_lp, read_aflw2000, read_synth
from facemtl.data.pts import read_pts, read_pts_folder
from facemtl.data.wflw import WFLW98_TO_68, read_wflw
from facemtl.data.wider import read_wider
from facemtl.geometry.rotations import euler_to_matrix
from facemtl.io import FileError

RNG = np.random.default_rng(0)


def write_image(path: Path, w: int = 64, h: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), RNG.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return path


def write_v73(path: Path, variables: dict) -> None:
    """A MATLAB v7.3 file (HDF5 with MATLAB's 512-byte header), as MATLAB lays it out."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        count = iter(range(10**6))

        def put(group, name, value):
            if isinstance(value, str):
                ds = group.create_dataset(name, data=np.array([[ord(c)] for c in value], np.uint16))
                ds.attrs["MATLAB_class"] = np.bytes_("char")
            elif isinstance(value, np.ndarray) and value.dtype == object:
                cells = np.empty(value.shape[::-1], dtype=h5py.ref_dtype)
                for idx in np.ndindex(value.shape):
                    key = f"r{next(count)}"
                    put(refs, key, value[idx])
                    cells[idx[::-1]] = refs[key].ref
                group.create_dataset(name, data=cells).attrs["MATLAB_class"] = np.bytes_("cell")
            else:
                value = np.asarray(value)
                ds = group.create_dataset(name, data=value.T)  # HDF5 holds MATLAB arrays transposed
                ds.attrs["MATLAB_class"] = np.bytes_("uint8" if value.dtype == np.uint8 else "double")

        for name, value in variables.items():
            put(f, name, value)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .".ljust(116)
    with open(path, "r+b") as fh:
        fh.write(header + b"\0" * 8 + b"\0\x02IM")  # version 0x0200, little-endian


def cells(items: list) -> np.ndarray:
    out = np.empty((1, len(items)), dtype=object)
    out[0, :] = items
    return out


# ---- 3DDFA .mat ---------------------------------------------------------------------------------------


def test_synth_mat_all_keys(tmp_path: Path):
    pt2d = RNG.uniform(5, 40, (2, 68))
    sio.savemat(tmp_path / "f0.mat", {
        "Pose_Para": np.array([[0.1, -0.5, 0.2, 30, 20, 0, 0.001]]), "pt2d_68": pt2d,
        "pt3d_68": np.vstack([pt2d, RNG.normal(size=(1, 68))]),
        "visible_68": (np.arange(68) % 3 > 0)[None].astype(float),
        "roi": np.array([[1.0, 2.0, 50.0, 45.0]]), "expr_weights": np.linspace(0, 1, 53)[None],
        "expr_class": 3, "identity": "id_007"})
    write_image(tmp_path / "f0.png")
    (tmp_path / "sub").mkdir()
    sio.savemat(tmp_path / "sub" / "f1.mat", {"Pose_Para": np.zeros((1, 7)), "pt2d_68": pt2d, "expr_class": "surprise"})
    write_image(tmp_path / "sub" / "f1.jpg")
    a, b = read_synth(tmp_path)
    assert a.source == "synth" and a.image_path == str(tmp_path / "f0.png")
    np.testing.assert_allclose(a.pose, np.degrees([-0.5, 0.1, 0.2]))
    np.testing.assert_allclose(a.landmarks, pt2d.T)  # 0-based already
    np.testing.assert_allclose(a.landmarks_3d[:, :2], pt2d.T)
    np.testing.assert_array_equal(a.visibility, np.arange(68) % 3 > 0)
    np.testing.assert_allclose(a.box, [1, 2, 50, 45])
    np.testing.assert_allclose(a.meta["expr_weights"], np.linspace(0, 1, 53))
    assert a.expression == 3 and a.meta["identity"] == "id_007"
    # optional keys absent: box from the landmarks, no visibility / 3D
    assert b.image_path.endswith("f1.jpg") and b.expression == EXPRESSIONS.index("surprise")
    assert b.visibility is None and b.landmarks_3d is None
    np.testing.assert_allclose(b.box, np.r_[pt2d.min(1), pt2d.max(1)])


def write_synth_expr(folder: Path, value) -> Path:
    sio.savemat(folder / "f.mat", {"Pose_Para": np.zeros((1, 7)), "pt2d_68": np.zeros((2, 68)), "expr_class": value})
    write_image(folder / "f.png")
    return folder


@pytest.mark.parametrize("value, expected", [(-1, None), (0, 0), (6.0, 6), ("angry", 6)])
def test_synth_expr_class(tmp_path: Path, value, expected):
    assert read_synth(write_synth_expr(tmp_path, value))[0].expression == expected


@pytest.mark.parametrize("value", [9, -2, 2.5, np.nan, "sleepy"])
def test_synth_bad_expr_class(tmp_path: Path, value):
    with pytest.raises(FileError, match=r"f\.mat: 'expr_class'"):
        read_synth(write_synth_expr(tmp_path, value))


@pytest.mark.parametrize("content, problem", [
    ({"pt2d": np.zeros((2, 68))}, r"missing key 'Pose_Para'"),
    ({"Pose_Para": np.zeros((1, 7))}, r"missing key 'pt2d'"),
    ({"Pose_Para": np.zeros((1, 7)), "pt2d": np.zeros((2, 67))}, r"'pt2d' has shape \(2, 67\), expected \(2, 68\)"),
    ({"Pose_Para": np.zeros((1, 6)), "pt2d": np.zeros((2, 68))}, r"'Pose_Para' has shape \(1, 6\)"),
    ({"Pose_Para": np.full((1, 7), np.nan), "pt2d": np.zeros((2, 68))}, r"'Pose_Para' has non-finite values"),
    ({"Pose_Para": np.array(["abc"]), "pt2d": np.zeros((2, 68))}, r"'Pose_Para' is not numeric"),
])
def test_300w_lp_malformed_mat(tmp_path: Path, content: dict, problem: str):
    sio.savemat(tmp_path / "bad_face.mat", content)
    write_image(tmp_path / "bad_face.jpg")
    with pytest.raises(FileError, match=r"bad_face\.mat: " + problem):
        read_300w_lp(tmp_path)


def test_mat_not_a_mat_file_and_missing_image(tmp_path: Path):
    (tmp_path / "junk.mat").write_bytes(b"this is not MATLAB data at all" * 10)
    with pytest.raises(FileError, match=r"junk\.mat: not a readable \.mat file"):
        read_aflw2000(tmp_path / "junk.mat")
    good = tmp_path / "ok" / "img.mat"
    good.parent.mkdir()
    sio.savemat(good, {"Pose_Para": np.zeros((1, 7)), "pt2d": np.zeros((2, 68))})
    with pytest.raises(FileError, match=r"img\.mat: no image img"):
        read_300w_lp(good)


def test_skip_errors_logs_and_keeps_the_good_files(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    pt2d = RNG.uniform(1, 40, (2, 68))
    for name in ("a", "c"):
        sio.savemat(tmp_path / f"{name}.mat", {"Pose_Para": np.zeros((1, 7)), "pt2d": pt2d})
        write_image(tmp_path / f"{name}.jpg")
    sio.savemat(tmp_path / "b.mat", {"Pose_Para": np.zeros((1, 7))})
    write_image(tmp_path / "b.jpg")
    with pytest.raises(FileError, match=r"b\.mat"):
        read_300w_lp(tmp_path)
    with caplog.at_level(logging.WARNING, logger="facemtl.data"):
        samples = read_300w_lp(tmp_path, skip_errors=True)
    assert [Path(s.image_path).name for s in samples] == ["a.jpg", "c.jpg"]
    assert "b.mat" in caplog.text and "skipped 1 malformed file" in caplog.text


def test_300w_lp_release_folders_without_annotations_are_skipped(tmp_path: Path):
    write_image(tmp_path / "AFW" / "AFW_1_0.jpg")
    sio.savemat(tmp_path / "AFW" / "AFW_1_0.mat", {"Pose_Para": np.zeros((1, 7)), "pt2d": np.ones((2, 68))})
    for folder, name in (("landmarks/AFW", "AFW_1_0_pts.mat"), ("Code/ModelGeneration", "Model_Shape.mat")):
        (tmp_path / folder).mkdir(parents=True)
        sio.savemat(tmp_path / folder / name, {"pts_2d": np.zeros((68, 2))})
    assert [Path(s.image_path).name for s in read_300w_lp(tmp_path)] == ["AFW_1_0.jpg"]


def test_aflw2000_layout_in_a_v73_file(tmp_path: Path):
    pt3d = RNG.uniform(2, 40, (3, 68))
    pt2d = RNG.uniform(2, 40, (2, 21))
    pt2d[:, 4] = (-1, 452)  # AFLW's unannotated point after 3DDFA's y flip
    write_v73(tmp_path / "image00001.mat", {"Pose_Para": np.array([[0.2, 0.3, -0.1, 1, 2, 3, 0.5]]),
                                            "pt3d_68": pt3d, "pt2d": pt2d})
    write_image(tmp_path / "image00001.jpg")
    (s,) = read_aflw2000(tmp_path)
    np.testing.assert_allclose(s.pose, np.degrees([0.3, 0.2, -0.1]))
    np.testing.assert_allclose(s.landmarks, pt3d[:2].T - 1)
    assert np.isnan(s.raw_landmarks[4]).all() and (~np.isnan(s.raw_landmarks[:, 0])).sum() == 20


# ---- .pts ---------------------------------------------------------------------------------------------


def write_pts(path: Path, points: np.ndarray, n: int | None = None, close: bool = True) -> Path:
    lines = ["version: 1", f"n_points: {len(points) if n is None else n}", "{"]
    lines += [f"{x:.3f} {y:.3f}" for x, y in points] + (["}"] if close else [])
    path.write_text("\n".join(lines) + "\n")
    return path


def test_pts_values_and_other_point_counts(tmp_path: Path):
    pts = RNG.uniform(1, 40, (68, 2)).round(3)
    write_pts(tmp_path / "a.pts", pts)
    write_image(tmp_path / "a.png")
    write_pts(tmp_path / "b.pts", pts[:39])
    write_image(tmp_path / "b.jpg")
    a, b = read_pts_folder(tmp_path)
    np.testing.assert_allclose(a.landmarks, pts - 1)  # iBUG 1-based -> 0-based
    assert a.raw_landmarks is None and b.landmarks is None
    np.testing.assert_allclose(b.raw_landmarks, pts[:39] - 1)
    np.testing.assert_allclose(read_pts_folder(tmp_path, one_based=False)[0].landmarks, pts)


@pytest.mark.parametrize("write, problem", [
    (lambda p, pts: write_pts(p, pts, close=False), r"truncated: no closing '}' \(68 of 68 points\)"),
    (lambda p, pts: write_pts(p, pts[:60], n=68), r"has 60 points, n_points says 68"),
    (lambda p, pts: p.write_text(write_pts(p, pts).read_text().replace(f"{pts[5, 0]:.3f}", "12,5")),
     r"point 6: unparsable number '12,5'"),
    (lambda p, pts: p.write_text("n_points: 68\n{\n}\n"), r"not a \.pts file"),
    (lambda p, pts: p.write_text("version: 1\nn_points: many\n{\n}\n"), r"line 2: unparsable number of points 'many'"),
    (lambda p, pts: p.write_text(write_pts(p, pts).read_text().replace(f"{pts[2, 1]:.3f}\n", "\n")),
     r"point 3: expected 'x y'"),
])
def test_malformed_pts(tmp_path: Path, write, problem: str):
    path = tmp_path / "broken_face.pts"
    write(path, RNG.uniform(1, 40, (68, 2)))
    with pytest.raises(FileError, match=r"broken_face\.pts: " + problem):
        read_pts(path)


def test_pts_folder_skip_errors(tmp_path: Path):
    write_pts(tmp_path / "good.pts", RNG.uniform(1, 40, (68, 2)))
    write_image(tmp_path / "good.png")
    write_pts(tmp_path / "trunc.pts", RNG.uniform(1, 40, (68, 2)), close=False)
    write_image(tmp_path / "trunc.png")
    with pytest.raises(FileError, match="trunc.pts"):
        read_pts_folder(tmp_path)
    assert [Path(s.image_path).name for s in read_pts_folder(tmp_path, skip_errors=True)] == ["good.png"]


# ---- BIWI ---------------------------------------------------------------------------------------------


def write_biwi_frame(folder: Path, frame: int, ypr: tuple[float, float, float], t=(10.0, -20.0, 900.0)) -> Path:
    write_image(folder / f"frame_{frame:05d}_rgb.png")
    R = euler_to_matrix(np.array(ypr))  # BIWI's matrix rows are facemtl's R (conventions.from_biwi)
    text = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in R) + "\n\n" + " ".join(f"{v}" for v in t) + "\n"
    path = folder / f"frame_{frame:05d}_pose.txt"
    path.write_text(text)
    return path


def test_biwi_fake_hpdb(tmp_path: Path):
    hpdb = tmp_path / "hpdb"
    write_biwi_frame(hpdb / "01", 3, (20.0, -10.0, 5.0))
    write_biwi_frame(hpdb / "01", 4, (-45.0, 15.0, -8.0))
    write_biwi_frame(hpdb / "02", 3, (0.0, 0.0, 0.0), t=(1.5, 2.5, 1000.0))
    samples = read_biwi(hpdb)
    assert [(s.meta["subject"], s.meta["frame"]) for s in samples] == [("01", 3), ("01", 4), ("02", 3)]
    np.testing.assert_allclose([s.pose for s in samples], [[20, -10, 5], [-45, 15, -8], [0, 0, 0]], atol=1e-4)
    np.testing.assert_allclose(samples[2].meta["translation_mm"], [1.5, 2.5, 1000.0])
    assert samples[0].image_path == str(hpdb / "01" / "frame_00003_rgb.png")
    assert len(read_biwi(hpdb / "02")) == 1


def test_biwi_errors(tmp_path: Path):
    hpdb = tmp_path / "hpdb"
    write_biwi_frame(hpdb / "01", 1, (10.0, 0.0, 0.0))
    bad = write_biwi_frame(hpdb / "01", 2, (10.0, 0.0, 0.0))
    bad.write_text(bad.read_text().replace("900.0", "9x0"))
    with pytest.raises(FileError, match=r"frame_00002_pose\.txt"):
        read_biwi(hpdb)
    assert len(read_biwi(hpdb, skip_errors=True)) == 1
    (hpdb / "01" / "frame_00001_rgb.png").unlink()
    with pytest.raises(FileError, match=r"frame_00001_pose\.txt: no image frame_00001_rgb\.png"):
        read_biwi(hpdb)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileError, match=r"empty: no frame_\*_pose\.txt files"):
        read_biwi(tmp_path / "empty")


# ---- WFLW list ------------------------------------------------------------------------------------------


def wflw_line(points: np.ndarray, box, attrs, name: str) -> str:
    return " ".join([f"{v:.6f}" for v in points.ravel()] + [str(v) for v in box] + [str(v) for v in attrs] + [name])


def test_wflw_list_file(tmp_path: Path):
    ann = tmp_path / "WFLW" / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    ann.mkdir(parents=True)
    pts = [RNG.uniform(10, 90, (98, 2)) for _ in range(2)]
    lines = [wflw_line(pts[0], (5, 6, 95, 96), (1, 0, 0, 0, 1, 0), "51--Dresses/51_Dresses_1.jpg"),
             wflw_line(pts[1], (1, 2, 99, 98), (0, 0, 1, 1, 0, 1), "0--Parade/0_Parade_2.jpg")]
    path = ann / "list_98pt_rect_attr_test.txt"
    path.write_text("\n".join(lines) + "\n")
    a, b = read_wflw(path)
    assert a.image_path == str(tmp_path / "WFLW" / "WFLW_images" / "51--Dresses" / "51_Dresses_1.jpg")
    np.testing.assert_allclose(a.raw_landmarks, pts[0], atol=1e-6)
    np.testing.assert_allclose(a.landmarks, pts[0][list(WFLW98_TO_68)], atol=1e-6)
    np.testing.assert_allclose(a.landmarks[[0, 8, 16, 30, 36, 45, 48, 67]],
                               pts[0][[0, 16, 32, 54, 60, 72, 76, 95]], atol=1e-6)  # by hand
    np.testing.assert_allclose(b.box, [1, 2, 99, 98])
    assert a.meta["pose"] and a.meta["occlusion"] and not a.meta["blur"] and b.meta["make_up"]
    assert read_wflw(path, images=tmp_path)[1].image_path == str(tmp_path / "0--Parade" / "0_Parade_2.jpg")
    path.write_text(lines[0] + "\n" + lines[1].replace(" 0--Parade", " 1 0--Parade") + "\n")
    with pytest.raises(FileError, match=r"list_98pt_rect_attr_test\.txt: line 2: 208 fields, expected 207"):
        read_wflw(path)
    path.write_text(lines[0].replace(lines[0].split()[7], "nan?", 1) + "\n")
    with pytest.raises(FileError, match=r"line 1: unparsable number 'nan\?'"):
        read_wflw(path)


# ---- COFW .mat ------------------------------------------------------------------------------------------


def cofw_content(n: int = 2, color: bool = False) -> tuple[dict, np.ndarray]:
    images = np.empty((n, 1), dtype=object)
    for i in range(n):
        images[i, 0] = np.zeros((40, 30, 3) if color else (40, 30), np.uint8)
    if color:
        images[0, 0][..., 0] = 200  # red in MATLAB's RGB
    phis = np.hstack([RNG.uniform(5, 25, (n, 29)), RNG.uniform(5, 35, (n, 29)), RNG.integers(0, 2, (n, 29))])
    return {"IsT": images, "phisT": phis, "bboxesT": np.array([[3.0, 4.0, 20.0, 30.0]] * n)}, phis


def check_cofw(samples, phis: np.ndarray) -> None:
    assert len(samples) == len(phis)
    for i, s in enumerate(samples):
        assert s.source == "cofw" and s.image_path is None
        assert s.image.shape == (40, 30, 3) and s.image.dtype == np.uint8
        raw = np.stack([phis[i, :29], phis[i, 29:58]], -1) - 1
        np.testing.assert_allclose(s.raw_landmarks, raw)
        for ibug, k in COFW29_TO_68.items():
            np.testing.assert_allclose(s.landmarks[ibug], raw[k])
            assert s.visibility[ibug] == 1 - phis[i, 58 + k]
        assert np.isnan(s.landmarks[1]).all() and np.isnan(s.visibility[1])
        np.testing.assert_array_equal(s.meta["occluded"], phis[i, 58:] == 1)
        np.testing.assert_allclose(s.box, [2, 3, 22, 33])


def test_cofw_mat(tmp_path: Path):
    content, phis = cofw_content()
    sio.savemat(tmp_path / "COFW_test.mat", content)
    check_cofw(read_cofw(tmp_path / "COFW_test.mat"), phis)
    train = {"IsTr": content["IsT"], "phisTr": phis, "bboxesTr": content["bboxesT"]}
    sio.savemat(tmp_path / "COFW_train.mat", train)
    check_cofw(read_cofw(tmp_path / "COFW_train.mat"), phis)


def test_cofw_color_v73(tmp_path: Path):
    content, phis = cofw_content(color=True)
    write_v73(tmp_path / "COFW_test_color.mat", content)
    samples = read_cofw(tmp_path / "COFW_test_color.mat")
    check_cofw(samples, phis)
    assert (samples[0].image[..., 2] == 200).all() and (samples[0].image[..., 0] == 0).all()  # RGB -> BGR


def test_cofw_malformed(tmp_path: Path):
    content, phis = cofw_content()
    sio.savemat(tmp_path / "no_phis.mat", {"IsT": content["IsT"]})
    with pytest.raises(FileError, match=r"no_phis\.mat: missing key 'phisT'"):
        read_cofw(tmp_path / "no_phis.mat")
    sio.savemat(tmp_path / "short.mat", {**content, "phisT": phis[:, :80]})
    with pytest.raises(FileError, match=r"short\.mat: 'phisT' has shape \(2, 80\), expected \(N, 87\)"):
        read_cofw(tmp_path / "short.mat")
    sio.savemat(tmp_path / "one_image.mat", {**content, "IsT": content["IsT"][:1]})
    with pytest.raises(FileError, match=r"one_image\.mat: 'IsT' has 1 images but 'phisT' has 2 rows"):
        read_cofw(tmp_path / "one_image.mat")


# ---- AFLW sqlite ----------------------------------------------------------------------------------------


def write_aflw(path: Path, codes=AFLW21_NAMES) -> dict:
    faces = {
        7: dict(file="0/image00002.jpg", rect=(10, 20, 100, 120), pose=(0.1, -0.2, 0.5), points={
            i + 1: tuple(RNG.uniform(10, 110, 2)) for i in range(21) if i not in (12, 17)}),  # no LE, no MLC
        9: dict(file="2/image00100.jpg", rect=(5, 6, 50, 60), pose=(-0.05, 0.3, -1.0), points={
            i + 1: tuple(RNG.uniform(5, 55, 2)) for i in range(21)}),
    }
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE Faces (face_id INTEGER PRIMARY KEY, file_id TEXT, db_id TEXT);
        CREATE TABLE FaceImages (image_id INTEGER PRIMARY KEY, db_id TEXT, file_id TEXT, filepath TEXT,
                                 bw INTEGER, width INTEGER, height INTEGER);
        CREATE TABLE FaceRect (face_id INTEGER, x INTEGER, y INTEGER, w INTEGER, h INTEGER, annot_type_id INTEGER);
        CREATE TABLE FacePose (face_id INTEGER, roll REAL, pitch REAL, yaw REAL, annot_type_id INTEGER);
        CREATE TABLE FeatureCoords (face_id INTEGER, feature_id INTEGER, x REAL, y REAL, annot_type_id INTEGER);
        CREATE TABLE FeatureCoordTypes (feature_id INTEGER, descr TEXT, code TEXT, x REAL, y REAL, z REAL);
    """)
    for k, (face_id, f) in enumerate(faces.items()):
        db.execute("INSERT INTO Faces VALUES (?, ?, 'flickr')", (face_id, f"file{k}"))
        db.execute("INSERT INTO FaceImages VALUES (?, 'flickr', ?, ?, 0, 200, 200)", (k, f"file{k}", f["file"]))
        db.execute("INSERT INTO FaceRect VALUES (?, ?, ?, ?, ?, 1)", (face_id, *f["rect"]))
        db.execute("INSERT INTO FacePose VALUES (?, ?, ?, ?, 1)", (face_id, *f["pose"]))
        for feature_id, (x, y) in f["points"].items():
            db.execute("INSERT INTO FeatureCoords VALUES (?, ?, ?, ?, 1)", (face_id, feature_id, x, y))
    for i, code in enumerate(codes):
        db.execute("INSERT INTO FeatureCoordTypes VALUES (?, '', ?, 0, 0, 0)", (i + 1, code))
    db.commit()
    db.close()
    return faces


def test_aflw_sqlite(tmp_path: Path):
    faces = write_aflw(tmp_path / "aflw.sqlite")
    a, b = read_aflw(tmp_path / "aflw.sqlite")
    assert a.meta["face_id"] == 7 and a.image_path == str(tmp_path / "flickr" / "0" / "image00002.jpg")
    np.testing.assert_allclose(a.box, [10, 20, 110, 140])
    roll, pitch, yaw = faces[7]["pose"]
    np.testing.assert_allclose(a.pose, np.degrees([yaw, pitch, -roll]))  # Hopenet: AFLW roll is flipped
    np.testing.assert_allclose(b.pose, np.degrees([-1.0, 0.3, 0.05]))
    np.testing.assert_allclose(a.raw_landmarks[0], faces[7]["points"][1])
    assert np.isnan(a.raw_landmarks[[12, 17]]).all() and (~np.isnan(a.raw_landmarks[:, 0])).sum() == 19
    # mapped points: nose tip (NC, id 15) -> 30, chin (CC, id 21) -> 8, mouth left corner missing -> 48
    np.testing.assert_allclose(a.landmarks[30], faces[7]["points"][15])
    np.testing.assert_allclose(a.landmarks[8], faces[7]["points"][21])
    assert np.isnan(a.landmarks[48]).all() and a.visibility[48] == 0 and a.visibility[30] == 1
    assert np.isnan(a.visibility[0]) and (b.visibility[list(AFLW21_TO_68)] == 1).all()
    assert read_aflw(tmp_path / "aflw.sqlite", images=tmp_path)[1].image_path == str(tmp_path / "2" / "image00100.jpg")


def test_aflw_sqlite_errors(tmp_path: Path):
    swapped = list(AFLW21_NAMES)
    swapped[0], swapped[2] = swapped[2], swapped[0]
    write_aflw(tmp_path / "swapped.sqlite", codes=swapped)
    with pytest.raises(FileError, match=r"swapped\.sqlite: FeatureCoordTypes: feature_id 1 is 'LBRC'"):
        read_aflw(tmp_path / "swapped.sqlite")
    (tmp_path / "text.sqlite").write_text("not a database " * 100)
    with pytest.raises(FileError, match=r"text\.sqlite: not a readable AFLW database"):
        read_aflw(tmp_path / "text.sqlite")
    db = sqlite3.connect(tmp_path / "partial.sqlite")
    db.execute("CREATE TABLE Faces (face_id INTEGER, file_id TEXT)")
    db.close()
    with pytest.raises(FileError, match=r"partial\.sqlite: missing table\(s\) FaceImages, FacePose"):
        read_aflw(tmp_path / "partial.sqlite")


# ---- AFW anno.mat ---------------------------------------------------------------------------------------


def afw_anno() -> tuple[np.ndarray, list]:
    faces = [[(np.array([[11.0, 21.0], [61.0, 81.0]]), np.array([[30.0, -5.0, 2.0]]), RNG.uniform(1, 60, (6, 2)))],
             [(np.array([[1.0, 2.0], [31.0, 42.0]]), np.array([[-15.0, 0.0, 0.0]]), RNG.uniform(1, 40, (6, 2))),
              (np.array([[50.0, 5.0], [90.0, 45.0]]), np.array([[90.0, 10.0, -3.0]]), RNG.uniform(50, 90, (6, 2)))]]
    anno = np.empty((2, 4), dtype=object)
    for i, (name, image_faces) in enumerate(zip(["1004109301.jpg", "2239259.jpg"], faces)):
        anno[i, 0] = name
        for j in range(3):
            anno[i, j + 1] = cells([f[j] for f in image_faces])
    return anno, faces


def check_afw(samples, faces, folder: Path) -> None:
    flat = [f for image_faces in faces for f in image_faces]
    assert len(samples) == 3 and [s.meta["face"] for s in samples] == [0, 0, 1]
    assert samples[1].image_path == str(folder / "2239259.jpg")
    for s, (box, pose, pts) in zip(samples, flat):
        np.testing.assert_allclose(s.box, box.ravel() - 1)
        np.testing.assert_allclose(s.pose, pose[0])
        np.testing.assert_allclose(s.raw_landmarks, pts - 1)
        assert s.landmarks is None
    np.testing.assert_allclose(samples[0].box, [10, 20, 60, 80])


def test_afw_anno_mat(tmp_path: Path):
    anno, faces = afw_anno()
    sio.savemat(tmp_path / "anno.mat", {"anno": anno})
    check_afw(read_afw(tmp_path / "anno.mat"), faces, tmp_path)
    write_v73(tmp_path / "anno73.mat", {"anno": anno})
    check_afw(read_afw(tmp_path / "anno73.mat"), faces, tmp_path)


def test_afw_malformed(tmp_path: Path):
    anno, _ = afw_anno()
    anno[1, 1] = cells([np.zeros((2, 2)), np.zeros((2, 3))])
    sio.savemat(tmp_path / "anno.mat", {"anno": anno})
    with pytest.raises(FileError, match=r"anno\.mat: row 2 \(2239259\.jpg\) face 2 box: expected \(2, 2\)"):
        read_afw(tmp_path / "anno.mat")
    sio.savemat(tmp_path / "other.mat", {"annotations": anno})
    with pytest.raises(FileError, match=r"other\.mat: missing key 'anno'"):
        read_afw(tmp_path / "other.mat")


# ---- WIDER FACE -----------------------------------------------------------------------------------------

WIDER_TEXT = """0--Parade/0_Parade_marchingband_1_849.jpg
2
449 330 122 149 0 0 0 0 0 0
10 20 30 40 2 1 0 1 2 1
0--Parade/0_Parade_Parade_0_452.jpg
0
0 0 0 0 0 0 0 0 0 0
1--Handshaking/1_Handshaking_1_158.jpg
1
5 6 7 8 1 0 1 0 0 0
"""


def test_wider_list(tmp_path: Path):
    split = tmp_path / "wider_face_split"
    split.mkdir()
    path = split / "wider_face_val_bbx_gt.txt"
    path.write_text(WIDER_TEXT)
    a, b, c = read_wider(path)
    assert a.source == "wider" and a.image_path == str(tmp_path / "WIDER_val" / "images" / "0--Parade" /
                                                       "0_Parade_marchingband_1_849.jpg")
    np.testing.assert_allclose(a.boxes, [[449, 330, 571, 479], [10, 20, 40, 60]])
    np.testing.assert_array_equal(a.meta["invalid"], [False, True])
    np.testing.assert_array_equal(a.meta["blur"], [0, 2])
    np.testing.assert_array_equal(a.meta["pose"], [0, 1])
    assert b.boxes.shape == (0, 4) and b.meta["invalid"].shape == (0,)
    np.testing.assert_allclose(c.boxes, [[5, 6, 12, 14]])
    assert c.meta["illumination"].tolist() == [1]


@pytest.mark.parametrize("text, problem", [
    (WIDER_TEXT.replace("10 20 30 40", "10 20 3O 40"), r"line 4: unparsable number '3O'"),
    (WIDER_TEXT.replace("5 6 7 8 1 0 1 0 0 0\n", ""),
     r"line 10: truncated, '1--Handshaking/1_Handshaking_1_158\.jpg' has 0 of 1"),
    (WIDER_TEXT.replace("\n2\n", "\ntwo\n"), r"line 2: expected the face count"),
    (WIDER_TEXT.replace("449 330 122 149 0 0 0 0 0 0", "449 330 122 149"), r"line 3: 4 fields, expected 10"),
])
def test_wider_malformed(tmp_path: Path, text: str, problem: str):
    path = tmp_path / "wider_face_train_bbx_gt.txt"
    path.write_text(text)
    with pytest.raises(FileError, match=r"wider_face_train_bbx_gt\.txt: " + problem):
        read_wider(path)


# ---- COCO json ------------------------------------------------------------------------------------------


def coco(keypoints: list, **ann) -> dict:
    return {"images": [{"id": 5, "file_name": "a/face.jpg", "width": 100, "height": 100}],
            "annotations": [{"id": 1, "image_id": 5, "keypoints": keypoints, **ann}]}


def test_coco_json_flags_and_one_based(tmp_path: Path):
    pts = RNG.uniform(10, 90, (29, 2))
    flags = np.full(29, 2.0)
    flags[[22, 23]] = 1  # occluded mouth corners
    flags[28] = 0  # chin not labelled
    kps = np.c_[pts, flags].ravel().tolist()
    path = tmp_path / "cofw.json"
    path.write_text(json.dumps(coco(kps, bbox=[10, 20, 30, 40])))
    (s,) = read_coco_json(path, one_based=True)
    assert s.image_path == str(tmp_path / "a" / "face.jpg") and s.meta["scheme"] == "cofw29"
    np.testing.assert_allclose(s.box, [9, 19, 39, 59])
    np.testing.assert_allclose(s.landmarks[30], pts[20] - 1)
    assert s.visibility[48] == 0 and s.visibility[54] == 0 and s.visibility[30] == 1
    assert np.isnan(s.landmarks[8]).all() and np.isnan(s.visibility[8])  # unlabelled chin
    path.write_text(json.dumps(coco(np.c_[pts[:19], np.ones(19)].ravel().tolist())))
    (s,) = read_coco_json(path)  # 0/1 flags only: labelled, occlusion unknown; no bbox: tight box
    assert s.meta["scheme"] == "aflw19" and np.isnan(s.visibility).all()
    np.testing.assert_allclose(s.box, np.r_[pts[:19].min(0), pts[:19].max(0)])


@pytest.mark.parametrize("content, problem", [
    ("{not json", r"invalid JSON"),
    ('{"annotations": []}', r"not a COCO keypoint file: missing 'images'"),
    (coco([1, 2, 2, 3]), r"annotation 0 \(id 1\): 4 keypoint values, expected a multiple of 3"),
    (coco([1, "x", 2]), r"annotation 0 \(id 1\): non-numeric keypoints"),
    ({**coco([1, 2, 2]), "annotations": [{"id": 3, "image_id": 99, "keypoints": [1, 2, 2]}]},
     r"annotation 0 \(id 3\): missing or unknown 99"),
    (coco([1, 2, 2], bbox=[1, 2, 3]), r"annotation 0: bbox must be 4 numbers"),
])
def test_coco_json_malformed(tmp_path: Path, content, problem: str):
    path = tmp_path / "faces.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(FileError, match=r"faces\.json: " + problem):
        read_coco_json(path)


# ---- dlib XML -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("xml, problem", [
    ("<dataset><images><image file='a.jpg'><box top='1' left='2'", r"invalid XML"),
    ("<dataset><images><image file='a.jpg'><box top='1' left='x' width='3' height='4'/></image></images></dataset>",
     r"<box> attribute left='x' is not an integer"),
    ("<dataset><images><image><box top='1' left='2' width='3' height='4'/></image></images></dataset>",
     r"<image> without a 'file' attribute"),
    ("<dataset><images><image file='a.jpg'><box top='1' left='2' width='3' height='4'>"
     "<part name='00' x='1' y='2'/><part name='00' x='3' y='4'/></box></image></images></dataset>",
     r"a\.jpg: a box repeats part names"),
])
def test_dlib_xml_malformed(tmp_path: Path, xml: str, problem: str):
    path = tmp_path / "faces.xml"
    path.write_text(xml)
    with pytest.raises(FileError, match=r"faces\.xml: " + problem):
        read_dlib_xml(path)


def test_dlib_xml_five_points_and_ignore(tmp_path: Path):
    parts = "".join(f"<part name='{i}' x='{10 + i}' y='{20 + 2 * i}'/>" for i in (0, 1, 2, 10, 4))
    path = tmp_path / "five.xml"
    path.write_text(f"<dataset><images><image file='p/a.jpg'><box top='1' left='2' width='30' height='40'>{parts}"
                    "</box><box top='5' left='6' width='7' height='8' ignore='1'/></image></images></dataset>")
    a, b = read_dlib_xml(path)
    assert a.landmarks is None and a.image_path == str(tmp_path / "p" / "a.jpg")
    np.testing.assert_allclose(a.raw_landmarks, [[10, 20], [11, 22], [12, 24], [14, 28], [20, 40]])  # numeric order
    np.testing.assert_allclose(a.box, [2, 1, 32, 41])
    assert not a.meta["ignore"] and b.meta["ignore"] and b.raw_landmarks is None
    (image,) = read_dlib_xml(path, per_image=True)
    np.testing.assert_allclose(image.boxes, [[2, 1, 32, 41], [6, 5, 13, 13]])
    np.testing.assert_array_equal(image.meta["ignore"], [False, True])

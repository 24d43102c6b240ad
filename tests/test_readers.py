"""Dataset readers on every real sample under ../shared (values read back from the raw files)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io as sio

from facemtl.data.coco_json import read_coco_json
from facemtl.data.dlib_xml import read_dlib_xml
from facemtl.data.mat3ddfa import read_300w_lp, read_aflw2000
from facemtl.data.pts import read_300vw, read_pts, read_pts_folder
from facemtl.data.registry import load_dataset
from facemtl.data.wflw import WFLW98_TO_68


@pytest.fixture(scope="module")
def samples_dir(shared: Path) -> Path:
    return shared / "data" / "format-samples"


def image_size(path: str) -> tuple[int, int]:
    h, w = cv2.imread(path, cv2.IMREAD_UNCHANGED).shape[:2]
    return w, h


def assert_inside(points: np.ndarray, size: tuple[int, int]) -> None:
    pts = points[~np.isnan(points[:, 0])]
    assert len(pts) > 0
    assert pts.min() >= 0 and np.all(pts[:, 0] <= size[0] - 1) and np.all(pts[:, 1] <= size[1] - 1)


def assert_box_contains(box: np.ndarray, points: np.ndarray, tight: bool = False) -> None:
    pts = points[~np.isnan(points[:, 0])]
    assert np.all(pts >= box[:2] - 1e-9) and np.all(pts <= box[2:] + 1e-9)
    if tight:
        np.testing.assert_allclose(box, np.r_[pts.min(0), pts.max(0)])


# ---- 300W-LP / AFLW2000-3D .mat ---------------------------------------------------------------------


def test_aflw2000_every_dev_file(aflw2000_dev: Path):
    samples = read_aflw2000(aflw2000_dev)
    mats = sorted(aflw2000_dev.glob("*.mat"))
    assert len(samples) == len(mats) == 32
    for s, path in zip(samples, mats):
        mat = sio.loadmat(path)
        assert s.source == "aflw2000" and s.image_path == str(path.with_suffix(".jpg")) and s.image is None
        # 1-based MATLAB pixels -> 0-based; z untouched
        np.testing.assert_allclose(s.landmarks, mat["pt3d_68"][:2].T - 1)
        np.testing.assert_allclose(s.landmarks_3d[:, :2], s.landmarks)
        np.testing.assert_allclose(s.landmarks_3d[:, 2], mat["pt3d_68"][2])
        p = mat["Pose_Para"][0].astype(np.float64)
        np.testing.assert_allclose(s.pose, np.degrees([p[1], p[0], p[2]]))  # raw, not wrapped
        missing = mat["pt2d"][0] == -1
        assert s.raw_landmarks.shape == (21, 2)
        np.testing.assert_array_equal(np.isnan(s.raw_landmarks[:, 0]), missing)
        np.testing.assert_allclose(s.raw_landmarks[~missing], mat["pt2d"].T[~missing] - 1)
        assert_box_contains(s.box, s.landmarks, tight=True)
        assert_inside(s.landmarks, image_size(s.image_path))


def test_aflw2000_pose_signs_match_the_images(aflw2000_dev: Path):
    """+yaw puts the nose tip left of the eyes' midpoint; +pitch (looking up) raises it."""
    samples = [s for s in read_aflw2000(aflw2000_dev) if np.all(np.abs(s.pose) < 99)]
    assert any(abs(s.pose[0]) > 99 for s in read_aflw2000(aflw2000_dev))  # raw angles are kept
    dx, dy, yaw, pitch = [], [], [], []
    for s in samples:
        lm = s.landmarks
        eyes = (lm[36] + lm[45]) / 2
        size = np.linalg.norm(lm[8] - lm[27])
        dx.append((lm[30, 0] - eyes[0]) / size)
        dy.append((lm[30, 1] - eyes[1]) / size)
        yaw.append(s.pose[0])
        pitch.append(s.pose[1])
    dx, dy, yaw, pitch = map(np.array, (dx, dy, yaw, pitch))
    turned = np.abs(yaw) > 15
    assert turned.sum() >= 8
    np.testing.assert_array_equal(np.sign(dx[turned]), -np.sign(yaw[turned]))
    assert np.corrcoef(pitch, dy)[0, 1] < -0.5


def test_300w_lp_sample(samples_dir: Path):
    root = samples_dir / "300w-lp"
    (s,) = read_300w_lp(root)
    mat = sio.loadmat(root / "IBUG_image_008_1_0.mat")
    assert s.source == "300w-lp" and s.image_path == str(root / "IBUG_image_008_1_0.jpg")
    np.testing.assert_allclose(s.landmarks, mat["pt2d"].T - 1)
    p = mat["Pose_Para"][0].astype(np.float64)
    np.testing.assert_allclose(s.pose, np.degrees([p[1], p[0], p[2]]))
    np.testing.assert_allclose(s.meta["pose_para"], p)
    assert s.landmarks_3d is None and s.raw_landmarks is None
    assert_box_contains(s.box, s.landmarks, tight=True)
    assert_inside(s.landmarks, image_size(s.image_path))
    assert read_300w_lp(root / "IBUG_image_008_1_0.mat")[0].image_path == s.image_path  # single file


# ---- .pts ---------------------------------------------------------------------------------------------


def first_point(path: Path) -> tuple[float, float]:
    line = path.read_text().splitlines()[3]
    return tuple(float(v) for v in line.split())


def test_pts_files(samples_dir: Path):
    paths = sorted(samples_dir.rglob("*.pts"))
    assert len(paths) == 5
    for path in paths:
        pts = read_pts(path)
        n = int(re.search(r"n_points:\s*(\d+)", path.read_text()).group(1))
        assert pts.shape == (n, 2) == (68, 2)
        np.testing.assert_allclose(pts[0], np.array(first_point(path)) - 1)
        np.testing.assert_allclose(read_pts(path, one_based=False), pts + 1)


def test_300w_pts_folder(samples_dir: Path):
    (s,) = read_pts_folder(samples_dir / "misc")
    assert s.source == "300w" and s.image_path.endswith("eos_image_0010.png")
    np.testing.assert_allclose(s.landmarks, read_pts(samples_dir / "misc" / "eos_image_0010.pts"))
    assert_box_contains(s.box, s.landmarks, tight=True)
    assert_inside(s.landmarks, image_size(s.image_path))


def test_300vw_and_its_mmpose_json_agree(samples_dir: Path):
    root = samples_dir / "mmpose" / "tests" / "data" / "300vw"
    samples = read_300vw(root)
    assert [(s.meta["video"], s.meta["frame"]) for s in samples] == [("001", 6), ("001", 9), ("401", 731), ("401", 732)]
    for s in samples:
        assert s.image_path == str(root / s.meta["video"] / "imgs" / f"{s.meta['frame']:06d}.jpg")
        assert s.landmarks.shape == (68, 2)
        assert_inside(s.landmarks, image_size(s.image_path))
    # mmpose copied the 1-based .pts values into its json: one_based=True gives the same points
    by_path = {s.image_path: s for s in samples}
    json_samples = read_coco_json(root / "anno_300vw.json", one_based=True)
    assert len(json_samples) == 3
    for js in json_samples:
        np.testing.assert_allclose(js.landmarks, by_path[js.image_path].landmarks)
        assert_box_contains(js.box, js.landmarks, tight=True)  # no bbox in this json: tight box


# ---- COCO json -----------------------------------------------------------------------------------------

EXPECTED_SCHEME = {"300w": "ibug68", "300wlp": "ibug68", "wflw": "wflw98", "cofw": "cofw29",
                   "aflw": "aflw19", "lapa": "lapa106", "300vw": "ibug68"}


def test_every_mmpose_json(samples_dir: Path):
    files = sorted((samples_dir / "mmpose" / "tests" / "data").glob("*/*.json"))
    assert len(files) == 7
    for path in files:
        data = json.loads(path.read_text())
        samples = read_coco_json(path)
        assert len(samples) == len(data["annotations"])
        images = {im["id"]: im for im in data["images"]}
        for s, ann in zip(samples, data["annotations"]):
            kps = np.array(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
            im = images[ann["image_id"]]
            assert s.meta["scheme"] == EXPECTED_SCHEME[path.parent.name]
            assert s.image_path == str(path.parent / im["file_name"])
            assert image_size(s.image_path) == (im["width"], im["height"])
            raw = s.landmarks if s.raw_landmarks is None else s.raw_landmarks
            np.testing.assert_allclose(raw, kps[:, :2])
            assert_inside(raw, (im["width"], im["height"]))
            if "bbox" in ann:
                x, y, w, h = ann["bbox"]
                np.testing.assert_allclose(s.box, [x, y, x + w, y + h])
            if s.meta["scheme"] == "lapa106":
                assert s.landmarks is None and s.visibility is None
            else:
                assert s.landmarks.shape == (68, 2) and s.visibility.shape == (68,)


def test_wflw_json_maps_to_a_68_face(samples_dir: Path):
    samples = read_coco_json(samples_dir / "mmpose" / "tests" / "data" / "wflw" / "test_wflw.json")
    assert len(samples) == 4
    for s in samples:
        lm = s.landmarks
        assert not np.isnan(lm).any()
        np.testing.assert_array_equal(lm, s.raw_landmarks[list(WFLW98_TO_68)])
        x, y = lm[:, 0], lm[:, 1]
        # The jaw runs from the image's left to its right (its top ends curl in on these tilted
        # faces), down to the chin at 7..9 and up again.
        assert np.all(np.diff(x[4:17]) > 0) and x[0] < x[8] < x[16]
        assert np.all(np.diff(y[:8]) > 0) and np.all(np.diff(y[9:17]) < 0) and 7 <= np.argmax(y[:17]) <= 9
        assert x[36] < x[39] < x[42] < x[45]  # eye corners left to right
        assert x[17] < x[21] < x[22] < x[26] and y[19] < y[37] and y[24] < y[44]  # brows above eyes
        assert x[31] < x[33] < x[35] and y[27] < y[30] < y[33] < y[51] < y[57] < y[8]  # midline order
        assert x[48] < x[51] < x[54] and x[60] < x[64]


def test_cofw_and_aflw_json_partial_maps(samples_dir: Path):
    data_dir = samples_dir / "mmpose" / "tests" / "data"
    cofw = read_coco_json(data_dir / "cofw" / "test_cofw.json")
    first = json.loads((data_dir / "cofw" / "test_cofw.json").read_text())["annotations"][0]
    kps = np.array(first["keypoints"]).reshape(29, 3)
    s = cofw[0]
    # occlusion flags (2 visible, 1 occluded) become visibility on the mapped points
    for ibug, cofw_index in [(48, 22), (54, 23), (51, 24), (57, 27), (8, 28), (36, 8), (30, 20)]:
        np.testing.assert_allclose(s.landmarks[ibug], kps[cofw_index, :2])
        assert s.visibility[ibug] == float(kps[cofw_index, 2] == 2)
    assert s.visibility[48] == 0 and s.visibility[8] == 1  # mouth occluded by the tongue, chin visible
    assert np.isnan(s.landmarks[0]).all() and np.isnan(s.visibility[0])  # jaw: no COFW point
    assert (~np.isnan(s.landmarks[:, 0])).sum() == 19
    for s in cofw:
        lm = s.landmarks
        assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0] and lm[48, 0] < lm[54, 0]
        assert lm[19, 1] < lm[36, 1] < lm[30, 1] < lm[51, 1] < lm[57, 1] < lm[8, 1]
    for s in read_coco_json(data_dir / "aflw" / "test_aflw.json"):
        lm = s.landmarks
        assert (~np.isnan(lm[:, 0])).sum() == 14 and np.isnan(s.visibility).all()  # 0/1 flags only
        assert lm[17, 0] < lm[21, 0] < lm[22, 0] < lm[26, 0] and lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]
        assert lm[19, 1] < lm[36, 1] < lm[30, 1] < lm[48, 1] < lm[8, 1] and lm[48, 0] < lm[30, 0] < lm[54, 0]


# ---- dlib XML -----------------------------------------------------------------------------------------


def test_every_dlib_xml(samples_dir: Path):
    files = sorted((samples_dir / "dlib-faces").glob("*.xml"))
    assert len(files) == 4
    total = 0
    for path in files:
        text = path.read_text(encoding="latin-1")
        samples = read_dlib_xml(path)
        assert len(samples) == text.count("<box ")
        with_parts = "<part " in text
        for s in samples:
            size = image_size(s.image_path)
            assert size == (s.meta["width"], s.meta["height"])
            x1, y1, x2, y2 = s.box
            assert 0 <= x1 < x2 <= size[0] + 1 and 0 <= y1 < y2 <= size[1] + 1
            if with_parts:
                assert s.landmarks.shape == (68, 2) and s.raw_landmarks is None
                assert_inside(s.landmarks, size)
                centre = s.landmarks.mean(0)  # the landmarks sit on the boxed face
                assert x1 <= centre[0] <= x2 and y1 <= centre[1] <= y2
            else:
                assert s.landmarks is None and s.raw_landmarks is None
        m = re.search(r"<box top='(\d+)' left='(\d+)' width='(\d+)' height='(\d+)'", text)
        top, left, width, height = map(float, m.groups())
        np.testing.assert_allclose(samples[0].box, [left, top, left + width, top + height])
        if with_parts:
            x, y = map(float, re.search(r"<part name='00' x='(\d+)' y='(\d+)'", text).groups())
            np.testing.assert_allclose(samples[0].landmarks[0], [x, y])
        per_image = read_dlib_xml(path, per_image=True)
        assert len(per_image) == text.count("<image ")
        assert sum(len(s.boxes) for s in per_image) == len(samples)
        total += len(samples) if with_parts else 0
    assert total == 43


def test_registry_reaches_the_readers(samples_dir: Path, aflw2000_dev: Path):
    assert len(load_dataset("aflw2000", aflw2000_dev)) == 32
    assert len(load_dataset("300w", samples_dir / "misc")) == 1
    assert len(load_dataset("dlib-xml", samples_dir / "dlib-faces" / "training.xml", per_image=True)) == 4
    assert len(load_dataset("coco-json", samples_dir / "mmpose/tests/data/cofw/test_cofw.json")) == 2

"""Face detectors: NMS and box mapping by hand, the registry, and the cascades on real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facemtl.infer.detector import (
    BOX_TO_LANDMARKS,
    CascadeDetector,
    adjust_boxes,
    available_detectors,
    create_detector,
    nms,
)
from facemtl.metrics.detection import iou

MULTI_FACE = {"couple.jpg": 2, "selfie-many-people.jpg": 3}


def test_nms_by_hand():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [22, 22, 26, 26], [40, 0, 50, 10.0]])
    scores = np.array([0.5, 0.9, 0.8, 0.95, 0.1])
    # 3 (0.95) first; 2 contains it entirely (containment 1) -> dropped; 1 keeps, 0 overlaps 1
    # with IoU 81/119 = 0.68 -> dropped; 4 is alone.
    assert nms(boxes, scores).tolist() == [3, 1, 4]
    assert nms(boxes, scores, iou_threshold=0.7, containment=1.01).tolist() == [3, 1, 2, 0, 4]
    assert nms(np.zeros((0, 4)), np.zeros(0)).tolist() == []


def test_nms_is_greedy_suppression_on_random_crowds():
    """Each kept box overlaps no better-scored kept box; each dropped box overlaps one (the greedy rule)."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        xy = rng.uniform(0, 100, (30, 2))
        boxes = np.c_[xy, xy + rng.uniform(5, 40, (30, 2))]
        scores = rng.uniform(size=30)
        keep = nms(boxes, scores, iou_threshold=0.4, containment=2.0)  # IoU alone, as the MOS detector
        assert np.all(np.diff(scores[keep]) <= 0)
        ov = iou(boxes, boxes)
        for j in np.argsort(-scores):
            better_kept = [k for k in keep if scores[k] > scores[j]]
            assert (j in keep) == (not better_kept or ov[j, better_kept].max() <= 0.4)


def test_adjust_boxes_by_hand():
    box = np.array([[10.0, 20.0, 110.0, 220.0]])  # w 100, h 200, centre (60, 120)
    # Centre moves by (0.1 w, -0.05 h) = (10, -10); size becomes (50, 300).
    np.testing.assert_allclose(adjust_boxes(box, (0.1, -0.05, 0.5, 1.5)), [[45, -40, 95, 260]])
    np.testing.assert_allclose(adjust_boxes(box, (0, 0, 1, 1)), box)


def test_registry():
    assert available_detectors()[0] == "opencv"
    assert isinstance(create_detector("opencv", min_face=0.2), CascadeDetector)
    # MOS's run-time settings are the analyzer's to pass whatever the name: the cascades ignore them.
    assert isinstance(create_detector("opencv", threads=1, score=0.5, canvas=320), CascadeDetector)
    with pytest.raises(ValueError, match="unknown detector 'yolo'; known: opencv, dlib, mediapipe"):
        create_detector("yolo")
    with pytest.raises(ValueError, match="profile must be"):
        CascadeDetector(profile="sometimes")
    with pytest.raises(ValueError, match="min_face"):
        CascadeDetector(min_face=0)
    for name in ("dlib", "mediapipe"):
        if name not in available_detectors():
            with pytest.raises(ValueError, match=f"needs the '{name}' package"):
                create_detector(name)


def test_nothing_in_a_blank_image():
    boxes, scores = CascadeDetector()(np.full((480, 640, 3), 127, np.uint8))
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def _photos(shared):
    return sorted(p for p in (shared / "data" / "photos").glob("*.jpg"))


def test_cascades_on_real_photos(shared):
    det = CascadeDetector()
    missed = []
    for path in _photos(shared):
        image = cv2.imread(str(path))
        boxes, scores = det(image)
        assert boxes.shape == (len(scores), 4) and np.all(np.diff(scores) <= 0) and np.all((scores > 0) & (scores < 1))
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
        if len(boxes) < MULTI_FACE.get(path.name, 1):
            missed.append((path.name, len(boxes)))
    assert missed == []


def test_boxes_match_landmark_boxes(shared):
    """On dlib's annotated photos (the calibration data, not the evaluation set), calibrated
    frontal boxes overlap the tight 68-landmark boxes well."""
    from facemtl.data.dlib_xml import read_dlib_xml

    samples = read_dlib_xml(shared / "data" / "format-samples" / "dlib-faces" / "training_with_face_landmarks.xml")
    det = CascadeDetector(min_face=0.05)
    best = []
    for path in sorted({s.image_path for s in samples}):
        gts = np.array([np.r_[s.landmarks.min(0), s.landmarks.max(0)] for s in samples if s.image_path == path])
        boxes, _ = det(cv2.imread(path))
        if len(boxes):
            best += list(iou(boxes, gts).max(axis=0))
    assert len(best) == len(samples)
    assert np.median(best) > 0.6
    # The frontal calibration shrinks the cascade box (it covers forehead and more).
    assert BOX_TO_LANDMARKS["frontal"][2] < 1 and BOX_TO_LANDMARKS["frontal"][3] < 1


def test_dlib_detector_when_installed(shared):
    if "dlib" not in available_detectors():
        pytest.skip("dlib is not installed")
    boxes, scores = create_detector("dlib")(cv2.imread(str(shared / "data" / "photos" / "couple.jpg")))
    assert len(boxes) == 2 and np.all(np.diff(scores) <= 0)


def test_mos_refuses_a_file_of_the_earlier_output_contract(tmp_path):
    """A detector exported before the 6D pose left the graph (outputs ending in ``rotation``) is
    refused by name, with what to do, not read wrongly."""
    import onnx
    from onnx import TensorProto, helper

    from facemtl.infer.mos_detector import MosDetector
    from facemtl.io import FileError

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])
    names = ["scores", "box_deltas", "point_deltas", "rotation"]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names]
    graph = helper.make_graph([helper.make_node("Identity", ["image"], [n]) for n in names], "old", [image], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"facemtl_detector": "{}"})
    path = tmp_path / "old.onnx"
    onnx.save(model, str(path))
    with pytest.raises(FileError, match="old.onnx.*earlier facemtl.*facemtl export"):
        MosDetector(path)


def test_mos_min_face_shrinks_the_canvas_and_keeps_the_faces_above_it():
    """The shipped detector with a ``min_face`` runs on a canvas that draws faces of that size at
    RELIABLE_FACE pixels (here half the pixels) and finds the same faces above it."""
    import math
    from pathlib import Path

    from facemtl.infer.analyzer import FaceAnalyzer
    from facemtl.infer.mos_detector import RELIABLE_FACE, MosDetector

    photo = cv2.imread(str(Path(__file__).parents[1] / "facemtl" / "assets" / "demo.jpg"))  # 640x480, 3 faces
    full, near = MosDetector(), MosDetector(min_face=0.2)
    assert full.canvas_side(photo.shape) == 416
    assert near.canvas_side(photo.shape) == math.ceil(640 * RELIABLE_FACE / (0.2 * 480)) == 267
    seen = []
    near.raw = lambda c, raw=near.raw: seen.append(c.shape) or raw(c)
    a, b = full.detect(photo), near.detect(photo)
    assert seen == [(224, 288, 3)]  # 267 x 200, each side up to a multiple of 32
    by_x = lambda boxes: boxes[np.argsort(boxes[:, 0])]  # noqa: E731
    assert len(a["boxes"]) == len(b["boxes"]) == 3
    assert np.diag(iou(by_x(a["boxes"]), by_x(b["boxes"]))).min() > 0.8
    assert b["scores"].min() > 0.8
    boxes, scores = near(photo)  # the analyzer's call: the same faces, without points and pose
    np.testing.assert_array_equal(boxes, b["boxes"])
    np.testing.assert_array_equal(scores, b["scores"])
    assert b["points"].shape == (3, 5, 2) and b["pose"].shape == (3, 3)
    # Faces of about 115 px: a min_face above them finds none; in pixels it never enlarges the canvas.
    assert len(MosDetector(min_face=150).detect(photo)["boxes"]) == 0
    assert MosDetector(min_face=8).canvas_side(photo.shape) == 416
    # The analyzer hands its min_face to a MOS detector it makes by name, not to the cascades.
    assert FaceAnalyzer(min_face=0.2, expression_model=False).detector.min_face == 0.2
    assert FaceAnalyzer(detector="opencv", min_face=0.2, expression_model=False).detector.min_face == 0.1

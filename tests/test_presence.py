"""Face presence (facemtl.tools.presence): the probe's fit, its place in the graph, and the analyzer's
limit on it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facemtl.contract import PRESENCE
from facemtl.infer.analyzer import FaceAnalyzer

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx_stub import build_model, outputs  # noqa: E402


def test_probe_separates_two_clouds_whatever_their_sizes():
    """Faces around +1 and ten times as many others around -1 in 16 dimensions, on scales from 0.01
    to 100 (the standardisation is folded into the weights): each class is weighted to half, so
    the probe puts its 0.5 between the clouds, not into the smaller one."""
    rng = np.random.default_rng(0)
    scale = np.logspace(-2, 2, 16)
    faces = (rng.normal(1.0, 1.0, (100, 16))) * scale
    others = (rng.normal(-1.0, 1.0, (1000, 16))) * scale
    from facemtl.tools.presence import fit_probe, probability

    w, b = fit_probe(faces, others)
    assert (probability(faces, w, b) > 0.5).mean() > 0.97
    assert (probability(others, w, b) < 0.5).mean() > 0.97
    assert probability(np.zeros(16), w, b) == pytest.approx(0.5, abs=0.15)


def test_attach_adds_the_probe_and_changes_nothing_else(tiny_main_onnx):
    from facemtl.tools.presence import attach, feature_reader, probability

    model = onnx.load(str(tiny_main_onnx))
    c = next(i for i in model.graph.initializer if i.name == "model.pose_head.fc.weight").dims[1]
    rng = np.random.default_rng(1)
    w, b = rng.normal(0, 0.05, c), 0.3
    added = attach(model, w, b)
    crops = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    want, got = outputs(model, crops), outputs(added, crops)
    assert list(got) == list(want) + [PRESENCE]
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    features = feature_reader(model)(crops)  # (5, 2, C): the crop and its mirror image
    assert features.shape == (5, 2, c)
    assert got[PRESENCE].shape == (5,)
    np.testing.assert_allclose(got[PRESENCE], probability(features[:, 0], w, b), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="already has an output"):
        attach(added, w, b)


def test_a_graph_without_a_pose_head_is_refused(tmp_path):
    from facemtl.tools.presence import attach

    stub = onnx.load(str(build_model(tmp_path / "stub.onnx")))
    with pytest.raises(ValueError, match="pose head"):
        attach(stub, np.zeros(3), 0.0)


def test_min_presence_drops_detections_where_the_model_reads_no_face(tmp_path):
    """The stub's presence is the crop's mean brightness / 255 (0.502 on a grey 128 image): a limit
    above it drops detections, never boxes the caller gives; the value is reported, flip-averaged."""
    model = build_model(tmp_path / "m.onnx", outputs=("pose", "pose_std", "landmarks", "visibility", "expression",
                                                      PRESENCE))
    image = np.full((200, 300, 3), 128, np.uint8)
    one = lambda img: (np.array([[100.0, 50, 180, 130]]), np.array([0.9]))  # noqa: E731
    analyzer = FaceAnalyzer(model, detector=one, refine=False)
    assert analyzer.min_presence == 0.0  # not the shipped model: no limit unless asked
    (face,) = analyzer(image)
    assert face.presence == pytest.approx(128 / 255, abs=1e-4)
    assert face.to_dict()["presence"] == pytest.approx(128 / 255, abs=1e-4)
    strict = FaceAnalyzer(model, detector=one, refine=False, min_presence=0.6)
    assert strict(image) == []
    assert len(strict(image, boxes=np.array([[100.0, 50, 180, 130]]))) == 1
    assert len(FaceAnalyzer(model, detector=one, refine=False, min_presence=0.4)(image)) == 1
    # A model without the output passes every face, whatever the limit.
    plain = FaceAnalyzer(build_model(tmp_path / "plain.onnx"), detector=one, refine=False, min_presence=0.99)
    (face,) = plain(image)
    assert face.presence is None and face.to_dict()["presence"] is None
    assert math.isclose(plain.min_presence, 0.99)

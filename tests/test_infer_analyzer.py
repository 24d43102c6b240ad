"""FaceAnalyzer on the tiny contract-conforming ONNX stub of ``onnx_stub`` (no torch).

The stub is built with ``follow=False``: it outputs a fixed 68-point layout in normalised crop
coordinates, ``pose = mean(B, G, R) of the crop - 128`` degrees, ``pose_std = [1, 2, 3]``, a
fixed visibility ramp and softmax expression scores of the mean colour: simple enough that every
result can be computed by hand.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
from onnx_stub import EXPRESSION_WEIGHTS, build_model, face_layout  # noqa: E402

from facemtl.geometry.rotations import euler_to_matrix  # noqa: E402
from facemtl.infer import FaceAnalyzer  # noqa: E402
from facemtl.io import FileError  # noqa: E402


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory) -> Path:
    return build_model(tmp_path_factory.mktemp("model") / "toy.onnx", follow=False)


def _expected(layout01: np.ndarray, box: np.ndarray, crop_scale: float = 1.5) -> np.ndarray:
    """Hand formula: normalised crop point l of the square crop around ``box`` -> image pixel
    ``centre + (l - 0.5) * crop_scale * max(w, h)`` (the crop's edges are l = 0 and 1)."""
    centre = (box[:2] + box[2:]) / 2
    return centre + (layout01 - 0.5) * crop_scale * max(box[2] - box[0], box[3] - box[1])


def test_landmarks_fill_the_given_box(toy_model):
    image = np.full((200, 300, 3), (148, 118, 138), np.uint8)
    box = np.array([100.0, 50.0, 180.0, 130.0])
    faces = FaceAnalyzer(toy_model, detector=None, flip=False)(image, boxes=box[None])
    assert len(faces) == 1
    face = faces[0]
    # The toy layout spans 1/6..5/6 of the crop, i.e. exactly the box: it maps back onto it.
    np.testing.assert_allclose(face.landmarks, box[:2] + face_layout() * 80, atol=1e-3)
    np.testing.assert_allclose(face.box, box, atol=1e-3)
    assert face.score == 1.0
    # Pose = crop mean colour - 128 (the crop lies inside the uniform image).
    assert (face.pose.yaw, face.pose.pitch, face.pose.roll) == pytest.approx((20, -10, 10), abs=1e-3)
    np.testing.assert_allclose(face.pose.matrix, euler_to_matrix([20, -10, 10]), atol=1e-6)
    np.testing.assert_allclose(face.pose.uncertainty, [1, 2, 3])
    np.testing.assert_allclose(face.visibility, np.linspace(0, 1, 68), atol=1e-6)
    logits = np.array([148, 118, 138]) / 255 @ EXPRESSION_WEIGHTS
    probs = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(face.expression.probs, probs, atol=1e-6)
    assert face.expression.label == ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry")[probs.argmax()]


def test_refinement_recrops_on_the_landmark_box(tmp_path):
    # A layout off-centre and smaller than the box: each crop moves, so refinement is visible.
    layout = 0.3 + face_layout() * np.array([0.5, 0.4])
    model = build_model(tmp_path / "m.onnx", size=48, follow=False, layout=layout)
    image = np.full((400, 400, 3), 90, np.uint8)
    box = np.array([120.0, 100.0, 220.0, 240.0])  # not square: the crop side follows the height
    once = _expected(layout, box)
    twice = _expected(layout, np.r_[once.min(0), once.max(0)])
    plain = FaceAnalyzer(model, detector=None, refine=False, flip=False)(image, boxes=box[None])[0]
    np.testing.assert_allclose(plain.landmarks, once, atol=1e-3)
    refined = FaceAnalyzer(model, detector=None, flip=False)(image, boxes=box[None])[0]
    np.testing.assert_allclose(refined.landmarks, twice, atol=1e-3)
    np.testing.assert_allclose(refined.box, np.r_[twice.min(0), twice.max(0)], atol=1e-3)

    # By default only an estimating detector's boxes are refined; a detector that gives the
    # landmark box itself (MOS: ``landmark_boxes``) is read in one pass.
    class LandmarkBoxes:
        landmark_boxes = True

        def __call__(self, image):
            return box[None], np.ones(1)

    def estimates(image):
        return box[None], np.ones(1)

    one_pass = FaceAnalyzer(model, detector=LandmarkBoxes(), flip=False)(image)[0]
    np.testing.assert_allclose(one_pass.landmarks, once, atol=1e-3)
    refined = FaceAnalyzer(model, detector=estimates, flip=False)(image)[0]
    np.testing.assert_allclose(refined.landmarks, twice, atol=1e-3)


def test_flip_averages_the_crop_and_its_mirror_image(tmp_path):
    """Default ``flip``: the stub also runs on the mirrored crop (same mean colour: same pose
    numbers), whose answer is mapped back -- yaw and roll negated, landmarks re-indexed and
    mirrored -- and averaged with the crop's own."""
    layout = face_layout()
    layout[30, 0] = 0.6  # the nose tip (its own mirror point) off the midline; the rest is symmetric
    model = build_model(tmp_path / "m.onnx", follow=False, layout=layout)
    image = np.full((200, 300, 3), (148, 118, 138), np.uint8)
    box = np.array([100.0, 50.0, 180.0, 130.0])
    face = FaceAnalyzer(model, detector=None, refine=False)(image, boxes=box[None])[0]
    assert (face.pose.yaw, face.pose.pitch, face.pose.roll) == pytest.approx((0, -10, 0), abs=1e-3)
    np.testing.assert_allclose(face.pose.matrix, euler_to_matrix([0, -10, 0]), atol=1e-6)
    expected = layout.copy()
    expected[30, 0] = 0.5  # (0.6 + (1 - 0.6)) / 2
    np.testing.assert_allclose(face.landmarks, box[:2] + (expected * 1.5 - 0.25) * 80, atol=1e-3)
    one_pass = FaceAnalyzer(model, detector=None, refine=False, flip=False)(image, boxes=box[None])[0]
    assert one_pass.pose.yaw == pytest.approx(20, abs=1e-3)
    assert one_pass.landmarks[30, 0] == pytest.approx(box[0] + (0.6 * 1.5 - 0.25) * 80, abs=1e-3)


def test_batch_many_faces_and_fixed_batch_model(tmp_path):
    model = build_model(tmp_path / "fixed.onnx", follow=False, batch=1)  # exported with batch size 1
    analyzer = FaceAnalyzer(model, detector=None, max_batch=64, flip=False)
    assert analyzer.max_batch == 1
    images = [np.full((120, 160), v, np.uint8) for v in (60, 200)]  # grey images
    boxes = [np.array([[10, 10, 40, 40, 0.9], [50, 20, 90, 60, 0.5], [100, 30, 130, 60, 0.7]]),
             np.zeros((0, 4))]
    faces = analyzer.batch(images, boxes)
    assert [len(f) for f in faces] == [3, 0]
    assert [f.score for f in faces[0]] == [0.9, 0.5, 0.7]
    for f, b in zip(faces[0], boxes[0]):
        np.testing.assert_allclose(f.box, b[:4], atol=1e-3)


def test_optional_outputs_and_json(tmp_path):
    model = build_model(tmp_path / "pose_only.onnx", follow=False, outputs=("pose",))
    image = np.full((100, 100, 3), 128, np.uint8)
    face = FaceAnalyzer(model, detector=None, flip=False)(image, boxes=[[30, 30, 70, 70]])[0]
    assert face.landmarks is None and face.visibility is None and face.expression is None
    assert face.pose.uncertainty is None
    np.testing.assert_allclose(face.box, [30, 30, 70, 70])
    record = face.to_dict()
    assert record["landmarks"] is None and record["pose"]["uncertainty"] is None
    assert record["pose"]["yaw"] == pytest.approx(0, abs=1e-4)
    # Conversion to another tool's convention goes through facemtl.geometry.conventions.
    np.testing.assert_allclose(face.pose.to("opencv"), np.zeros(3), atol=1e-6)


def test_model_errors(tmp_path):
    with pytest.raises(FileError, match="model file not found"):
        FaceAnalyzer(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(FileError, match="not a loadable ONNX model"):
        FaceAnalyzer(tmp_path / "junk.onnx")
    with pytest.raises(FileError, match="facemtl_input_size"):
        FaceAnalyzer(build_model(tmp_path / "nometa.onnx", metadata=False))
    analyzer = FaceAnalyzer(build_model(tmp_path / "ok.onnx"), detector=None)
    with pytest.raises(ValueError, match="no detector"):
        analyzer(np.zeros((50, 50, 3), np.uint8))
    with pytest.raises(ValueError, match="invalid box"):
        analyzer(np.zeros((50, 50, 3), np.uint8), boxes=[[10, 10, 5, 20]])


def test_default_model_message():
    from facemtl.infer.onnx_model import DEFAULT_MODEL

    if DEFAULT_MODEL.is_file():
        pytest.skip("a default model is shipped")
    with pytest.raises(FileError, match="no default model is shipped yet"):
        FaceAnalyzer()


def test_detects_and_analyses_real_photo(shared, toy_model):
    faces = FaceAnalyzer(toy_model)(shared / "data" / "photos" / "couple.jpg")
    assert len(faces) >= 2
    for f in faces:
        assert f.landmarks.shape == (68, 2) and 0 < f.score <= 1
        np.testing.assert_allclose(f.box, np.r_[f.landmarks.min(0), f.landmarks.max(0)])


def test_no_torch_import():
    code = "import sys, facemtl.infer, facemtl.infer.predict; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_max_uncertainty_drops_detections_the_model_cannot_read(toy_model):
    """The stub's mean pose_std is 2 deg: a limit under it drops detections, never boxes the caller
    gives; another model than the shipped one has no limit unless asked."""
    import math

    image = np.full((200, 300, 3), 128, np.uint8)
    two = lambda img: (np.array([[10.0, 10, 90, 90], [150, 50, 250, 150]]), np.array([0.9, 0.8]))  # noqa: E731
    assert FaceAnalyzer(toy_model, detector=two).max_uncertainty == math.inf
    assert len(FaceAnalyzer(toy_model, detector=two)(image)) == 2
    strict = FaceAnalyzer(toy_model, detector=two, max_uncertainty=1.5)
    assert strict(image) == []
    assert len(strict(image, boxes=np.array([[10.0, 10, 90, 90]]))) == 1
    assert len(FaceAnalyzer(toy_model, detector=two, max_uncertainty=2.5)(image)) == 2


def test_max_flip_gap_drops_detections_read_unlike_their_mirror_image(tmp_path):
    """A stub layout shifted right by 0.05 of the crop: the mirrored crop's reading, mapped back, is
    shifted left by as much, so every point's two readings lie 0.1 crop sides apart."""
    import math

    layout = face_layout() + [0.05, 0.0]
    model = build_model(tmp_path / "m.onnx", follow=False, layout=layout)
    image = np.full((200, 300, 3), 128, np.uint8)
    one = lambda img: (np.array([[100.0, 50, 180, 130]]), np.array([0.9]))  # noqa: E731
    analyzer = FaceAnalyzer(model, detector=one, refine=False)
    assert analyzer.max_flip_gap == math.inf  # not the shipped model: no limit unless asked
    assert analyzer(image)[0].flip_gap == pytest.approx(0.1, abs=1e-5)
    strict = FaceAnalyzer(model, detector=one, refine=False, max_flip_gap=0.09)
    assert strict(image) == []
    assert len(strict(image, boxes=np.array([[100.0, 50, 180, 130]]))) == 1  # given boxes are kept
    assert len(FaceAnalyzer(model, detector=one, refine=False, max_flip_gap=0.11)(image)) == 1
    assert len(FaceAnalyzer(model, detector=one, refine=False, max_flip_gap=0.09, flip=False)(image)) == 1


def test_shipped_model_is_less_sure_of_a_logo_than_of_a_face(shared):
    """photos/img37.jpg: the detector also boxes a lettered logo (score 0.66); the shipped model's
    pose uncertainty there is several times the person's, so a stricter ``max_uncertainty`` than
    the shipped default drops the logo and keeps the face."""
    import math

    image = shared / "data" / "photos" / "img37.jpg"
    everything = FaceAnalyzer(max_uncertainty=math.inf, max_flip_gap=math.inf, min_presence=0.0)(image)
    assert len(everything) == 2
    face, logo = sorted(everything, key=lambda f: -f.score)
    assert np.mean(logo.pose.uncertainty) > 2.5 * np.mean(face.pose.uncertainty)
    kept = FaceAnalyzer(max_uncertainty=8.0, max_flip_gap=math.inf, min_presence=0.0)(image)
    assert len(kept) == 1 and np.allclose(kept[0].box, face.box)


def test_shipped_model_reads_no_face_in_a_logo(shared):
    """photos/img37.jpg again: the shipped model's face presence is near 1 on the person and under
    its default limit on the logo (model ee234078: 0.33 against 0.35), so the analyzer keeps the face
    alone on the presence, and its flip gap is over its limit too."""
    import math

    from facemtl.infer.onnx_model import SHIPPED_MAX_FLIP_GAP, SHIPPED_MIN_PRESENCE

    image = shared / "data" / "photos" / "img37.jpg"
    everything = FaceAnalyzer(max_uncertainty=math.inf, max_flip_gap=math.inf, min_presence=0.0)(image)
    face, logo = sorted(everything, key=lambda f: -f.score)
    assert face.presence > 0.99 and logo.presence < SHIPPED_MIN_PRESENCE
    assert face.flip_gap < SHIPPED_MAX_FLIP_GAP < logo.flip_gap
    for kept in (FaceAnalyzer(max_uncertainty=math.inf, max_flip_gap=math.inf)(image), FaceAnalyzer()(image)):
        assert len(kept) == 1 and np.allclose(kept[0].box, face.box)


def test_shipped_model_reads_a_sleeve_differently_in_the_mirror(shared):
    """photos/img15.jpg: the detector also boxes a grey sleeve at the shoulder whose pose uncertainty
    is within the shipped limit; the landmarks read on its crop and on the mirrored crop lie far
    apart, a face's nearly coincide, so a flip-gap limit between the two drops the sleeve only (the
    shipped model's own limits leave that to its face presence). The int8 detector scores the sleeve
    0.45-0.55 depending on the CPU's int8 kernels (AVX: 0.45, about the default threshold 0.5), so the
    test asks for boxes down to 0.4."""
    import math

    image = shared / "data" / "photos" / "img15.jpg"
    everything = FaceAnalyzer(max_flip_gap=math.inf, min_presence=0.0, score=0.4)(image)
    assert len(everything) == 2
    face, sleeve = sorted(everything, key=lambda f: f.flip_gap)
    assert sleeve.flip_gap > 5 * face.flip_gap and face.score > sleeve.score
    kept = FaceAnalyzer(min_presence=0.0, max_flip_gap=math.sqrt(face.flip_gap * sleeve.flip_gap), score=0.4)(image)
    assert len(kept) == 1 and np.allclose(kept[0].box, face.box)
    by_default = FaceAnalyzer(score=0.4)(image)
    assert len(by_default) == 1 and np.allclose(by_default[0].box, face.box)
    assert FaceAnalyzer(flip=False)(image)[0].flip_gap is None

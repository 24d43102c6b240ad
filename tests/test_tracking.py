"""One-Euro filter (hand-computed steps, jitter, lag, angle wrap), IoU tracker ids, FaceTracker on drawn shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facemtl.infer.tracking import FaceTracker, IoUTracker, OneEuroFilter, wrap
from onnx_stub import BlobDetector, build_model, squares_frame

# -- One-Euro -------------------------------------------------------------------------------------


def _a(dt: float, cutoff: float) -> float:
    """Casiez et al. 2012: alpha = 1 / (1 + tau / Te), tau = 1 / (2 pi fc)."""
    return 1 / (1 + 1 / (2 * math.pi * cutoff) / dt)


def test_one_euro_step_hand_computed():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0, d_cutoff=1.0)
    assert f(0.0, 0.0) == 0.0  # first sample passes through
    a = 0.1 / (0.1 + 1 / (2 * math.pi))  # = 0.38587
    assert a == pytest.approx(0.385869, abs=1e-6)
    assert f(1.0, 0.1) == pytest.approx(a)
    assert f(1.0, 0.2) == pytest.approx(a + a * (1 - a))  # 0.62284
    assert f(1.0, 0.2) == pytest.approx(a + a * (1 - a))  # same time again: previous estimate
    # It follows the step: within 1e-3 after two seconds at 30 Hz.
    out = [f(1.0, 0.2 + k / 30) for k in range(1, 61)]
    assert abs(out[-1] - 1) < 1e-3 and np.all(np.diff(out) > 0)


def test_one_euro_speed_raises_cutoff_hand_computed():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.5, d_cutoff=1.0)
    f(0.0, 0.0)
    dx = _a(0.1, 1.0) * (1.0 - 0.0) / 0.1  # speed 10 /s low-passed from 0
    cutoff = 1.0 + 0.5 * dx  # 2.93 Hz
    assert f(1.0, 0.1) == pytest.approx(_a(0.1, cutoff))  # 0.648
    assert _a(0.1, cutoff) == pytest.approx(0.64796, abs=1e-4)


def test_one_euro_variable_frame_rate():
    # The smoothing factor follows each interval: a 0.3 s gap lets more of the new value through.
    f = OneEuroFilter(min_cutoff=2.0)
    f(np.array([0.0, 10.0]), 1.0)
    y1 = f(np.array([1.0, 0.0]), 1.05)
    np.testing.assert_allclose(y1, [_a(0.05, 2.0), 10 * (1 - _a(0.05, 2.0))])
    y2 = f(np.array([1.0, 0.0]), 1.35)
    np.testing.assert_allclose(y2, y1 + _a(0.3, 2.0) * (np.array([1.0, 0.0]) - y1))


def test_one_euro_reduces_jitter_and_beta_reduces_lag():
    rng = np.random.default_rng(0)
    t = np.arange(300) / 30
    noisy = 5 + rng.normal(0, 1, len(t))
    f = OneEuroFilter(min_cutoff=1.0, beta=0.01)
    out = np.array([f(x, s) for x, s in zip(noisy, t)])
    assert out[30:].std() < 0.4 * noisy[30:].std()
    assert abs(out[30:].mean() - 5) < 0.2
    # On a ramp (40 units/s) the speed term cuts the lag of the plain low-pass.
    ramp = 40 * t
    lag = {beta: np.abs(np.array([g(x, s) for g in [OneEuroFilter(1.0, beta)] for x, s in zip(ramp, t)]) - ramp)[60:]
           .mean() for beta in (0.0, 0.05)}
    assert lag[0.05] < 0.5 * lag[0.0]


def test_one_euro_scale_invariance_and_nan_restart():
    t = np.arange(20) / 25
    x = np.sin(3 * t)
    a, b = OneEuroFilter(0.5, 2.0), OneEuroFilter(0.5, 2.0)
    # Speed in units of `scale`: a 100x larger signal with scale 100 is filtered identically.
    np.testing.assert_allclose([100 * a(v, s) for v, s in zip(x, t)], [b(100 * v, s, scale=100) for v, s in zip(x, t)])
    f = OneEuroFilter(1.0)
    f(np.array([1.0, 1.0]), 0.0)
    assert np.isnan(f(np.array([np.nan, 3.0]), 0.1)[0])
    y = f(np.array([7.0, 3.0]), 0.2)
    assert y[0] == 7.0 and 1 < y[1] < 3  # the NaN element restarted from the new sample


def test_angle_wrap_does_not_swing_through_zero():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0, period=360.0)
    assert f(179.0, 0.0) == 179.0
    a = _a(0.1, 1.0)
    # -179 is 2 degrees past 179: the estimate moves 2a degrees forward and wraps to -180 + ...
    np.testing.assert_allclose(f(-179.0, 0.1), wrap(179 + 2 * a, 360))
    out = [f(-179.0, 0.1 + 0.1 * k) for k in range(1, 30)]  # converges to -179 from the 180 side
    assert all(abs(v) >= 179 for v in out) and out[-1] == pytest.approx(-179, abs=0.01)
    plain = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    plain(179.0, 0.0)
    assert abs(plain(-179.0, 0.1)) < 100  # without the period it swings through 0
    np.testing.assert_allclose(wrap(np.array([180.0, -180.0, 540.0, 10.0]), 360), [-180, -180, -180, 10])


# -- IoU tracker ----------------------------------------------------------------------------------


def _box(cx: float, cy: float, size: float = 40.0) -> list[float]:
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]


def test_tracker_keeps_ids_births_and_deaths():
    tr = IoUTracker(max_missing=3)
    assert list(tr.update([_box(50, 50), _box(200, 50)])) == [0, 1]
    for k in range(1, 10):  # moving 4 px per frame; boxes given in a shuffled order
        ids = tr.update([_box(200 - 4 * k, 50), _box(50 + 4 * k, 50)])
        assert list(ids) == [1, 0]
    # A third face is born; face 0 disappears for 3 frames and comes back near where it was heading.
    assert list(tr.update([_box(86, 50), _box(164, 50), _box(300, 200)])) == [0, 1, 2]
    for k in range(3):
        assert list(tr.update([_box(160 - 4 * k, 50), _box(300, 200)])) == [1, 2]
    assert list(tr.update([_box(104, 52), _box(148, 50), _box(300, 200)])) == [0, 1, 2]
    # Missing for more than max_missing frames: the track ended, a returning face gets a new id.
    for _ in range(4):
        tr.update([_box(300, 200)])
    assert list(tr.update([_box(104, 52), _box(300, 200)])) == [3, 2]
    assert list(tr.update(np.zeros((0, 4)))) == []


@pytest.mark.parametrize("dy", [0.0, 10.0])
def test_tracker_no_swap_when_faces_cross_slowly(dy):
    tr = IoUTracker()
    # Two faces walk through each other (same size, 2 px per frame), one slightly lower or not.
    for k in range(80):
        a, b = _box(40 + 2 * k, 100), _box(200 - 2 * k, 100 + dy)
        order = [b, a] if k % 2 else [a, b]
        ids = tr.update(order)
        assert list(ids) == ([1, 0] if k % 2 else [0, 1]), f"frame {k}"


def test_tracker_far_jump_is_a_new_face():
    tr = IoUTracker()
    tr.update([_box(50, 50)])
    assert list(tr.update([_box(150, 150)])) == [1]


# -- FaceTracker on drawn shapes ------------------------------------------------------------------


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    return build_model(tmp_path_factory.mktemp("stub") / "stub.onnx")


def test_face_tracker_detects_every_n_frames_and_follows(stub):
    from facemtl.infer import FaceAnalyzer

    detector = BlobDetector()
    tracker = FaceTracker(FaceAnalyzer(stub, detector=detector), detect_every=5, smooth=False)
    for k in range(20):
        faces = tracker(squares_frame([(10 + 3 * k, 20, 30), (120 - 2 * k, 70, 26)]), k / 10)
        assert [f.id for f in faces] == [0, 1]
        assert [f.detected for f in faces] == [k % 5 == 0] * 2
        # Followed from the previous frame's landmarks, the box still lands on the moved square.
        # (A square from x to x + side covers the pixels x .. x + side: its box is x - 0.5 .. x + side + 0.5.)
        np.testing.assert_allclose(faces[0].face.box, [9.5 + 3 * k, 19.5, 40.5 + 3 * k, 50.5], atol=1.0)
        np.testing.assert_allclose(faces[1].face.box, [119.5 - 2 * k, 69.5, 146.5 - 2 * k, 96.5], atol=1.0)
    assert detector.calls == 4  # frames 0, 5, 10, 15


def test_face_tracker_keeps_only_the_detections_the_analyzer_keeps(stub):
    """New detections pass the analyzer's score and plausibility limits, as in ``FaceAnalyzer(image)``
    (the stub's mean pose uncertainty is 2 deg, BlobDetector's score 0.9)."""
    from facemtl.infer import FaceAnalyzer

    frame = squares_frame([(10, 20, 30), (120, 70, 26)])
    for settings, n in (({}, 2), ({"max_uncertainty": 1.5}, 0), ({"max_uncertainty": 2.5}, 2), ({"score": 0.95}, 0)):
        analyzer = FaceAnalyzer(stub, detector=BlobDetector(), **settings)
        assert len(analyzer(frame)) == n
        assert len(FaceTracker(analyzer, detect_every=5, smooth=False)(frame, 0.0)) == n, settings


def test_face_tracker_lost_face_and_return(stub):
    from facemtl.infer import FaceAnalyzer

    detector = BlobDetector()
    tracker = FaceTracker(FaceAnalyzer(stub, detector=detector), detect_every=5, max_unconfirmed=1,
                          max_missing=30, smooth=False)
    seen = []
    for k in range(40):
        squares = [(20, 30, 30)] + ([(100, 40, 30)] if not 8 <= k < 20 else [])
        seen.append(sorted(f.id for f in tracker(squares_frame(squares), k / 30)))
    assert seen[0] == [0, 1]
    # The vanished face is followed until two detector runs in a row (frames 10, 15) miss it ...
    assert seen[14] == [0, 1] and seen[15] == [0] and seen[19] == [0]
    # ... and when it is back nearby at the next detection (frame 20) it gets its old id.
    assert seen[20] == [0, 1] and seen[-1] == [0, 1]
    assert detector.calls == 8  # every 5 frames, with or without faces


def test_face_tracker_two_boxes_on_one_face(stub):
    from facemtl.infer import FaceAnalyzer

    detector = BlobDetector()
    # The squares jump (a third of this small frame changes): no scene-cut handling here.
    tracker = FaceTracker(FaceAnalyzer(stub, detector=detector), detect_every=10, smooth=False,
                          cut_threshold=np.inf)
    out = []
    for k in range(6):
        # Two faces, then one between them: both followed boxes slide onto it (the stub model
        # moves a box part of the way per frame).
        squares = [(30, 40, 30), (80, 40, 30)] if k < 2 else [(55, 40, 30)]
        out.append(([f.id for f in tracker(squares_frame(squares), k / 30)], detector.calls))
    assert out[2] == ([0, 1], 1)
    assert out[3] == ([0], 1)  # overlapping: the younger is dropped, the older keeps its id though it moved far
    assert out[4] == ([0], 2)  # a face was lost: the detector runs at once (and finds nothing new)


def test_tracker_known_ids():
    tr = IoUTracker()
    tr.update([_box(50, 50), _box(150, 50)])
    # Known ids win over geometry (a followed face that moved far); unknown boxes are matched or born.
    assert list(tr.update([_box(100, 50), _box(148, 50), _box(300, 300)], ids=[0, -1, -1])) == [0, 1, 2]
    assert list(tr.update([_box(140, 50)], ids=[7])) == [1]  # an unknown id is matched like -1
    with pytest.raises(ValueError, match="2 ids for 1 boxes"):
        tr.update([_box(0, 0)], ids=[0, 1])


def test_face_tracker_smoothing_reduces_jitter(stub):
    from facemtl.infer import FaceAnalyzer

    rng = np.random.default_rng(1)
    offsets = rng.normal(0, 0.7, (40, 2))
    centres = {}
    for smooth in (False, True):
        tracker = FaceTracker(FaceAnalyzer(stub, detector=BlobDetector()), detect_every=10, smooth=smooth)
        boxes = [tracker(squares_frame([(60 + dx, 40 + dy, 36)]), k / 30)[0].face.box for k, (dx, dy) in enumerate(offsets)]
        centres[smooth] = np.array([(b[:2] + b[2:]) / 2 for b in boxes])[10:]
    raw_jitter, smooth_jitter = (np.linalg.norm(np.diff(centres[s], axis=0), axis=1).mean() for s in (False, True))
    assert raw_jitter > 0.5
    assert smooth_jitter < 0.5 * raw_jitter


def test_face_tracker_drops_a_followed_face_the_model_no_longer_reads_as_one(tmp_path):
    """A stub whose presence is the crop's brightness: a followed square that dims (as a tracked box
    drifting off a face onto a coat) is dropped in that very frame with a presence limit, and followed
    on until the next detections miss it without one."""
    from facemtl.contract import PRESENCE
    from facemtl.infer import FaceAnalyzer

    model = build_model(tmp_path / "m.onnx", outputs=("pose", "pose_std", "landmarks", "visibility", "expression",
                                                      PRESENCE))

    def frame(dim: bool) -> np.ndarray:
        image = np.full((120, 160, 3), 20, np.uint8)
        image[20:50, 10:40] = 255
        image[60:90, 100:130] = 60 if dim else 255  # presence about 0.15 dim, 0.49 bright
        return image

    for limit, ids_when_dim in ((0.3, [0]), (0.0, [0, 1])):
        tracker = FaceTracker(FaceAnalyzer(model, detector=BlobDetector(), min_presence=limit), detect_every=10,
                              smooth=False)
        assert sorted(f.id for f in tracker(frame(False), 0.0)) == [0, 1]
        assert sorted(f.id for f in tracker(frame(True), 0.1)) == ids_when_dim, limit

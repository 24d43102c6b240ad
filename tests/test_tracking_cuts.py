"""Scene cuts (issue 13.2): a face id never passes to another face across a hard cut."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facemtl.infer import FaceAnalyzer
from facemtl.infer.tracking import FaceTracker, face_patch, frame_change, patch_similarity, thumbnail

SIZE = (640, 360)


def clip(shared: Path, name: str, n: int, start: int = 0) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(shared / "data" / "videos" / name))
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    while len(frames) < n:
        ok, frame = cap.read()
        assert ok, f"{name}: fewer than {start + n} frames"
        frames.append(cv2.resize(frame, SIZE, interpolation=cv2.INTER_AREA))
    return frames


def centre(box: np.ndarray) -> np.ndarray:
    return (box[:2] + box[2:]) / 2


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    # The shipped models: the real faces must be found. The detector's threshold is raised from
    # 0.5 to 0.6 here because detector 37eab3c3 also scores a hand on a microphone (Hamilton clip,
    # up to 0.55 in 3 frames): a track of its own, not what these tests are about (the false faces
    # are reported in docs/detector.md).
    return FaceAnalyzer(score=0.6)


@pytest.fixture(scope="module")
def joined(shared, analyzer) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Obama's clip, then a Hamilton performer shifted so that his face lands where Obama's was:
    without cut detection the tracker's geometry alone hands Obama's id over."""
    a = clip(shared, "3ddfa_obama.mp4", 8)
    b = clip(shared, "face_recognition_short_hamilton_clip.mp4", 6, start=100)
    fa, fb = analyzer(a[-1]), analyzer(b[0])
    assert len(fa) == 1 and len(fb) >= 1
    shift = centre(fa[0].box) - centre(fb[0].box)
    m = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
    return a, [cv2.warpAffine(f, m, SIZE) for f in b]


def ids_of(tracker: FaceTracker, frames: list[np.ndarray], t0: int = 0) -> list[set[int]]:
    return [{f.id for f in tracker(frame, (t0 + i) / 30)} for i, frame in enumerate(frames)]


def test_id_does_not_pass_to_another_face_at_a_cut(joined, analyzer):
    a, b = joined
    tracker = FaceTracker(analyzer)
    before, after = ids_of(tracker, a), ids_of(tracker, b, len(a))
    assert all(before) and all(after)  # a face in every frame on both sides
    assert not set().union(*before) & set().union(*after)
    assert len(set().union(*after)) == 1 and tracker.cuts == 1


def test_same_face_keeps_its_id_through_a_lighting_jump(joined, analyzer):
    a, _ = joined
    dimmed = [cv2.convertScaleAbs(f, alpha=0.45, beta=10) for f in a[4:]]  # a flash off: looks like a cut
    assert frame_change(thumbnail(a[3]), thumbnail(dimmed[0])) > 20
    tracker = FaceTracker(analyzer)
    ids = ids_of(tracker, a[:4] + dimmed)
    assert tracker.cuts == 1 and set().union(*ids) == {0}


def test_patch_similarity():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)
    box = np.array([10.0, 10, 60, 60])
    p = face_patch(frame, box)
    assert patch_similarity(p, face_patch(cv2.convertScaleAbs(frame, alpha=0.5, beta=30), box)) > 0.99
    assert patch_similarity(p, face_patch(frame, box + 30)) < 0.3
    assert face_patch(np.zeros((100, 100, 3), np.uint8), box) is None  # flat
    assert patch_similarity(p, None) == -1.0

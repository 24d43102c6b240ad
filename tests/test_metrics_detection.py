import numpy as np
import pytest

from facemtl.metrics.detection import average_precision, iou, recall_at_score


def test_iou_by_hand():
    a = np.array([[0.0, 0, 10, 10], [0, 0, 0, 0]])
    b = np.array([[5.0, 5, 15, 15], [20, 20, 30, 30], [0, 0, 10, 5]])
    # Overlap 5x5 = 25 over 100 + 100 - 25; disjoint; half the box; a zero-area box has IoU 0.
    np.testing.assert_allclose(iou(a, b), [[25 / 175, 0, 0.5], [0, 0, 0]])
    assert iou(a, np.zeros((0, 4))).shape == (2, 0)


# Image 0: gt A, B. Detections: exact A (0.9, TP), shifted A (0.8, IoU 81/119, duplicate -> FP),
# far away (0.7, FP). Image 1: gt C; detection covering its top half (0.6, IoU exactly 0.5 -> TP).
# Ranked: TP FP FP TP over 3 positives: precision 1 1/2 1/3 1/2, recall 1/3 1/3 1/3 2/3.
# Envelope 1 1/2 1/2 1/2 -> AP = 1/3 * 1 + 1/3 * 1/2 = 0.5.
PRED = [np.array([[0.0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]]), np.array([[0.0, 0, 10, 5]])]
SCORES = [np.array([0.9, 0.8, 0.7]), np.array([0.6])]
GT = [np.array([[0.0, 0, 10, 10], [20, 20, 30, 30]]), np.array([[0.0, 0, 10, 10]])]


def test_average_precision_by_hand():
    assert average_precision(PRED, SCORES, GT) == pytest.approx(0.5)
    # A stricter IoU drops the half-box match: only the first TP remains -> AP = 1/3.
    assert average_precision(PRED, SCORES, GT, iou_threshold=0.6) == pytest.approx(1 / 3)


def test_ignored_ground_truth():
    # Image 1 gets a face D with a confident detection on it.
    pred = [PRED[0], np.concatenate([PRED[1], [[100.0, 100, 120, 120]]])]
    scores = [SCORES[0], np.array([0.6, 0.95])]
    gt = [GT[0], np.concatenate([GT[1], [[100.0, 100, 120, 120]]])]
    ignore = [np.array([False, False]), np.array([False, True])]
    # Ignored: D is no positive and its detection is dropped -> the same AP as without them.
    assert average_precision(pred, scores, gt, ignore) == pytest.approx(0.5)
    # Not ignored: TP(.95) TP FP FP TP over 4 positives: precision 1 1 2/3 1/2 3/5, recall 1/4 1/2 1/2 1/2 3/4
    # -> AP = 1/4 + 1/4 + 1/4 * 3/5 = 0.65.
    assert average_precision(pred, scores, gt) == pytest.approx(0.65)


def test_recall_at_score():
    assert recall_at_score(PRED, SCORES, GT, 0.65) == pytest.approx(1 / 3)
    assert recall_at_score(PRED, SCORES, GT, 0.6) == pytest.approx(2 / 3)
    assert recall_at_score(PRED, SCORES, GT, 0.99) == 0.0


def test_edge_cases():
    no_det = [np.zeros((0, 4)), np.zeros((0, 4))]
    no_score = [np.zeros(0), np.zeros(0)]
    assert average_precision(no_det, no_score, GT) == 0.0
    assert np.isnan(average_precision(PRED, SCORES, [np.zeros((0, 4)), np.zeros((0, 4))]))
    assert average_precision(GT, [np.array([0.5, 0.4]), np.array([0.3])], GT) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no images"):
        average_precision([], [], [])
    with pytest.raises(ValueError, match="one entry per image"):
        average_precision(PRED, SCORES, GT[:1])
    with pytest.raises(ValueError, match="scores"):
        average_precision(PRED, [SCORES[0][:2], SCORES[1]], GT)

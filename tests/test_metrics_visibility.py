import numpy as np
import pytest

from facemtl.metrics.visibility import occlusion_recall_at_precision, recall_at_precision

# Sorted from most to least likely occluded. 4 occluded points (visible == 0).
# Calling the first k occluded:   k = 1    2    3    4    5
#   true occluded among them:         1    2    2    3    4
#   precision:                        1    1   2/3  3/4  4/5
#   recall:                          1/4  1/2  1/2  3/4   1
PROB = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]])
VISIBLE = np.array([[0, 0, 1, 0, 0, 1, 1, 1]])


def test_occlusion_recall_by_hand():
    assert occlusion_recall_at_precision(PROB, VISIBLE, 0.8) == pytest.approx((1.0, 0.5))
    assert occlusion_recall_at_precision(PROB, VISIBLE, 0.9) == pytest.approx((0.5, 0.2))
    assert occlusion_recall_at_precision(PROB, VISIBLE, 0.7) == pytest.approx((1.0, 0.5))


def test_unknown_labels_are_ignored():
    prob = np.concatenate([PROB, [[0.05]]], axis=1)
    visible = np.concatenate([VISIBLE, [[np.nan]]], axis=1)
    assert occlusion_recall_at_precision(prob, visible, 0.9) == pytest.approx((0.5, 0.2))


def test_precision_never_reached_and_no_positive():
    recall, threshold = occlusion_recall_at_precision([0.1, 0.2], [1, 0])  # precision 0 then 1/2
    assert recall == 0.0 and np.isnan(threshold)
    assert all(np.isnan(occlusion_recall_at_precision([0.1, 0.2], [1, 1])))


def test_tied_scores_form_one_cut():
    # Both 0.1 points are called occluded together: precision 1/2, never 0.8.
    assert occlusion_recall_at_precision([0.1, 0.1, 0.9], [0, 1, 1])[0] == 0.0
    assert occlusion_recall_at_precision([0.1, 0.2, 0.9], [0, 1, 1])[0] == 1.0


def test_generic_direction_and_errors():
    # Higher score = positive: labels 1 1 0 1 by decreasing score -> 2/2 at precision 1.
    assert recall_at_precision([0.9, 0.8, 0.7, 0.6], [1, 1, 0, 1], 1.0) == pytest.approx((2 / 3, 0.8))
    with pytest.raises(ValueError, match="differ"):
        recall_at_precision([0.1], [1, 0])
    with pytest.raises(ValueError, match="no labelled"):
        recall_at_precision([0.1], [np.nan])
    with pytest.raises(ValueError, match="NaN score"):
        recall_at_precision([np.nan, 0.2], [1, 0])
    with pytest.raises(ValueError, match="0, 1"):
        recall_at_precision([0.1, 0.2], [2, 0])

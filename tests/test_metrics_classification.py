import numpy as np
import pytest

from facemtl.metrics.classification import accuracy, confusion_matrix, macro_f1, precision_recall_f1

# 4 classes, class 3 never occurs.
Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 0, 2])


def test_confusion_matrix_rows_true_cols_pred():
    expected = [[1, 1, 0, 0],
                [0, 2, 0, 0],
                [1, 0, 1, 0],
                [0, 0, 0, 0]]
    np.testing.assert_array_equal(confusion_matrix(Y_TRUE, Y_PRED, 4), expected)


def test_scores_by_hand():
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(4 / 6)
    r = precision_recall_f1(Y_TRUE, Y_PRED, 4)
    # precision = diagonal / column sums (2, 3, 1, 0); recall = diagonal / row sums (2, 2, 2, 0); 0/0 -> 0.
    np.testing.assert_allclose(r["precision"], [1 / 2, 2 / 3, 1, 0])
    np.testing.assert_allclose(r["recall"], [1 / 2, 1, 1 / 2, 0])
    # F1 = 2pr / (p + r): 0.5, (4/3)/(5/3) = 0.8, 1/1.5 = 2/3, 0.
    np.testing.assert_allclose(r["f1"], [0.5, 0.8, 2 / 3, 0])
    np.testing.assert_array_equal(r["support"], [2, 2, 2, 0])
    # Class 3 occurs nowhere and is left out of the macro average.
    assert macro_f1(Y_TRUE, Y_PRED, 4) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_bad_labels_raise():
    with pytest.raises(ValueError, match="empty"):
        accuracy(np.array([], int), np.array([], int))
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(Y_TRUE, Y_PRED, 2)
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(Y_TRUE - 1, Y_PRED, 4)
    with pytest.raises(ValueError, match="integer"):
        accuracy(Y_TRUE.astype(float), Y_PRED)
    with pytest.raises(ValueError, match="shape"):
        macro_f1(Y_TRUE, Y_PRED[:-1], 4)

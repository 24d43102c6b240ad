"""Classification metrics (pure numpy) for expression recognition.

Labels are integer class indices in ``[0, num_classes)`` (for expressions: indices into
:data:`facemtl.contract.EXPRESSIONS`), shape (N,). Empty input or labels out of range
raise ``ValueError``. A ratio whose denominator is 0 (precision of a never-predicted class,
recall of a class with no sample) is 0, as scikit-learn's default ``zero_division``.
"""

from __future__ import annotations

import numpy as np


def _check_labels(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"expected y_true and y_pred of shape (N,), got {y_true.shape} and {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("empty labels (N = 0)")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{name} must hold integer class indices, got dtype {y.dtype}")
        if num_classes is not None and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} has labels outside [0, {num_classes}): min {y.min()}, max {y.max()}")
    return y_true, y_pred


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of samples with ``y_pred == y_true``."""
    y_true, y_pred = _check_labels(y_true, y_pred, None)
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: **rows = true class, columns = predicted class**."""
    y_true, y_pred = _check_labels(y_true, y_pred, num_classes)
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(num.shape, dtype=np.float64), where=den > 0)


def precision_recall_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Per-class ``precision``, ``recall``, ``f1`` (float arrays) and ``support`` (true counts), each (C,)."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    precision = _safe_ratio(tp, cm.sum(axis=0))
    recall = _safe_ratio(tp, support)
    f1 = _safe_ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Unweighted mean F1 over the classes that occur in ``y_true`` or ``y_pred``.

    Classes absent from both are left out (scikit-learn's ``f1_score(average="macro")``
    without ``labels``), so evaluating on a subset of classes is not penalised for the rest.
    """
    y_true, y_pred = _check_labels(y_true, y_pred, num_classes)
    present = np.zeros(num_classes, dtype=bool)
    present[y_true] = True
    present[y_pred] = True
    return float(precision_recall_f1(y_true, y_pred, num_classes)["f1"][present].mean())

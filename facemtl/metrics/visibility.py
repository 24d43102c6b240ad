"""Occlusion detection quality (pure numpy): recall at a fixed precision.

COFW / RCPR / MNN protocol: the **positive class is "occluded"**, and the score is the
recall of occluded points at 80% precision, sweeping the decision threshold.

facemtl's visibility convention is the opposite (1 = visible, 0 = occluded, ``NaN`` =
unknown), so :func:`occlusion_recall_at_precision` takes visibility probabilities and
labels as facemtl stores them and does the flip; :func:`recall_at_precision` is the generic
form (label 1 = positive, higher score = more positive).
"""

from __future__ import annotations

import numpy as np


def recall_at_precision(scores: np.ndarray, labels: np.ndarray, precision: float = 0.8) -> tuple[float, float]:
    """Highest recall reachable with precision >= ``precision``, and its score threshold.

    Items with ``scores >= threshold`` are predicted positive; every distinct score is tried
    as a threshold. Inputs of any (equal) shape are flattened; items whose label is ``NaN``
    are ignored, the other labels must be 0 or 1.

    Returns:
        ``(recall, threshold)``. ``(0.0, nan)`` if no threshold reaches the precision;
        ``(nan, nan)`` if there is no positive label.

    Raises ``ValueError`` on shape mismatch, when nothing is labelled, or on a ``NaN`` score
    of a labelled item.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if scores.shape != labels.shape:
        raise ValueError(f"recall_at_precision: scores {scores.shape} and labels {labels.shape} differ")
    keep = ~np.isnan(labels)
    scores, labels = scores[keep], labels[keep]
    if scores.size == 0:
        raise ValueError("recall_at_precision: no labelled items")
    if np.isnan(scores).any():
        raise ValueError("recall_at_precision: NaN score for a labelled item")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("recall_at_precision: labels must be 0, 1 or NaN")
    n_pos = labels.sum()
    if n_pos == 0:
        return float("nan"), float("nan")
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    tp = np.cumsum(labels)
    predicted = np.arange(1, labels.size + 1)
    # Only the last item of a run of equal scores is a reachable cut.
    cut = np.r_[scores[1:] != scores[:-1], True]
    ok = cut & (tp >= precision * predicted - 1e-12)
    if not ok.any():
        return 0.0, float("nan")
    best = np.flatnonzero(ok)[np.argmax(tp[ok])]
    return float(tp[best] / n_pos), float(scores[best])


def occlusion_recall_at_precision(visibility_prob: np.ndarray, visible: np.ndarray,
                                  precision: float = 0.8) -> tuple[float, float]:
    """Recall of **occluded** points at ``precision`` (COFW: 0.8) from visibility predictions.

    Args:
        visibility_prob: predicted probability that each point is visible, e.g. (N, 68).
        visible: facemtl labels, same shape: 1 = visible, 0 = occluded, ``NaN`` = ignored.

    Returns:
        ``(recall, threshold)``: points with ``visibility_prob <= threshold`` are called
        occluded. ``(0.0, nan)`` if the precision is never reached, ``(nan, nan)`` if no
        point is occluded. See :func:`recall_at_precision` for errors.
    """
    visibility_prob = np.asarray(visibility_prob, dtype=np.float64)
    occluded = 1.0 - np.asarray(visible, dtype=np.float64)  # NaN stays NaN
    recall, threshold = recall_at_precision(-visibility_prob, occluded, precision)
    return recall, -threshold

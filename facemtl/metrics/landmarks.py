"""Landmark errors (pure, batched numpy): NME, CED curve, AUC and failure rate.

Landmarks are (N, K, 2) pixels; the eye-based normalisers need the iBUG-68 order (K = 68,
0-based indices). NME values are unitless (pixels / pixels), usually reported x100 (%).

Which points count: ground-truth points that are ``NaN`` (a dataset that cannot map all 68
points) are excluded, and with ``visible`` also points with ``visible == 0``
(``NaN`` = unknown visibility is kept). A sample with no point left, or whose normaliser
cannot be computed because the points it needs are ``NaN``, gets a ``NaN`` error.

:func:`ced_curve`, :func:`auc` and :func:`failure_rate` take such per-sample errors; they
raise ``ValueError`` on empty input or on ``NaN`` errors, so dropping unscorable samples is
an explicit choice of the caller (``errors[np.isfinite(errors)]``).
"""

from __future__ import annotations

import numpy as np

NORMS = ("inter_ocular", "inter_pupil", "bbox", "diagonal")

# iBUG-68 eyes: outer corners 36 (image-left eye) and 45; each eye's six points.
_OUTER_CORNERS = (36, 45)
_LEFT_EYE = slice(36, 42)
_RIGHT_EYE = slice(42, 48)


def _landmark_box(gt: np.ndarray) -> np.ndarray:
    """(N, 4) ``x1, y1, x2, y2`` of each sample's finite ground-truth points (NaN if none)."""
    finite = np.isfinite(gt).all(axis=-1, keepdims=True)
    lo = np.where(finite, gt, np.inf).min(axis=1)
    hi = np.where(finite, gt, -np.inf).max(axis=1)
    box = np.concatenate([lo, hi], axis=-1)
    return np.where(np.isfinite(box), box, np.nan)


def normaliser(gt: np.ndarray, norm: str = "inter_ocular", boxes: np.ndarray | None = None) -> np.ndarray:
    """Per-sample NME normaliser in pixels, (N, K, 2) -> (N,).

    * ``inter_ocular``: distance between the outer eye corners, points 36 and 45 (300W).
    * ``inter_pupil``: distance between the centroids of points 36-41 and 42-47 (all twelve
      must be annotated).
    * ``bbox``: ``sqrt(w * h)`` of ``boxes`` (N, 4) ``x1, y1, x2, y2`` if given, else of the
      bounding box of the finite ground-truth points.
    * ``diagonal``: ``sqrt(w^2 + h^2)`` of the same box.

    ``NaN`` where the points needed are missing.
    """
    gt = np.asarray(gt, dtype=np.float64)
    if norm in ("inter_ocular", "inter_pupil"):
        if gt.shape[1] != 68:
            raise ValueError(f"norm={norm!r} needs iBUG-68 landmarks, got {gt.shape[1]} points")
        if norm == "inter_ocular":
            a, b = gt[:, _OUTER_CORNERS[0]], gt[:, _OUTER_CORNERS[1]]
        else:
            a, b = gt[:, _LEFT_EYE].mean(axis=1), gt[:, _RIGHT_EYE].mean(axis=1)
        return np.linalg.norm(a - b, axis=-1)
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")
    if boxes is None:
        box = _landmark_box(gt)
    else:
        box = np.asarray(boxes, dtype=np.float64)
        if box.shape != (len(gt), 4):
            raise ValueError(f"boxes must be ({len(gt)}, 4) x1, y1, x2, y2, got {box.shape}")
    w, h = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    if (w < 0).any() or (h < 0).any():
        raise ValueError("boxes must have x2 >= x1 and y2 >= y1")
    return np.sqrt(w * h) if norm == "bbox" else np.hypot(w, h)


def nme(pred: np.ndarray, gt: np.ndarray, norm: str = "inter_ocular", boxes: np.ndarray | None = None,
        visible: np.ndarray | None = None) -> np.ndarray:
    """Per-sample normalised mean error, (N, K, 2) x2 -> (N,).

    ``nme[i] = mean_j |pred[i, j] - gt[i, j]| / normaliser(gt)[i]`` over the scored points j
    (finite ``gt``, and ``visible != 0`` when ``visible`` (N, K) is given). The normaliser is
    computed from all ground-truth points regardless of visibility; see :func:`normaliser`.

    Raises ``ValueError`` on shape mismatch, empty input, a non-finite prediction at a
    scored point, or a zero normaliser. Unscorable samples are ``NaN`` (module docstring).
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[2] != 2:
        raise ValueError(f"nme: expected pred and gt of shape (N, K, 2), got {pred.shape} and {gt.shape}")
    if len(gt) == 0:
        raise ValueError("nme: empty input (N = 0)")
    scored = np.isfinite(gt).all(axis=-1)
    if visible is not None:
        visible = np.asarray(visible, dtype=np.float64)
        if visible.shape != scored.shape:
            raise ValueError(f"nme: visible must be {scored.shape}, got {visible.shape}")
        scored &= visible != 0  # NaN != 0: unknown visibility stays scored
    if not np.isfinite(pred[scored]).all():
        raise ValueError("nme: predictions must be finite at every scored point")
    dist = np.where(scored, np.linalg.norm(np.where(scored[..., None], pred - gt, 0.0), axis=-1), 0.0)
    count = scored.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_dist = np.where(count > 0, dist.sum(axis=1) / count, np.nan)
    scale = normaliser(gt, norm, boxes)
    if (scale == 0).any():
        raise ValueError(f"nme: zero {norm} normaliser for samples {np.flatnonzero(scale == 0).tolist()}")
    return mean_dist / scale


def _check_errors(errors: np.ndarray, threshold: float, what: str) -> np.ndarray:
    errors = np.asarray(errors, dtype=np.float64).ravel()
    if errors.size == 0:
        raise ValueError(f"{what}: empty errors")
    if np.isnan(errors).any():
        raise ValueError(f"{what}: errors contain NaN; drop unscorable samples first")
    if not threshold > 0:
        raise ValueError(f"{what}: threshold must be > 0, got {threshold}")
    return errors


def ced_curve(errors: np.ndarray, max_error: float = 0.1, steps: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: ``(thresholds, fraction of errors <= threshold)``.

    ``thresholds = linspace(0, max_error, steps + 1)`` (``steps`` intervals).
    """
    errors = np.sort(_check_errors(errors, max_error, "ced_curve"))
    thresholds = np.linspace(0.0, max_error, steps + 1)
    return thresholds, np.searchsorted(errors, thresholds, side="right") / errors.size


def auc(errors: np.ndarray, threshold: float = 0.1) -> float:
    """Area under the CED curve from 0 to ``threshold``, divided by ``threshold`` (in [0, 1]).

    Computed exactly: the CED is a step function, and each error ``e`` contributes
    ``max(threshold - e, 0)`` to the area, so ``AUC = mean(clip(1 - e / threshold, 0, 1))``.
    The 300W / WFLW evaluation scripts integrate a sampled CED, which approximates this.
    """
    errors = _check_errors(errors, threshold, "auc")
    return float(np.clip(1.0 - errors / threshold, 0.0, 1.0).mean())


def failure_rate(errors: np.ndarray, threshold: float = 0.1) -> float:
    """Fraction of samples with error strictly above ``threshold`` (e.g. NME > 0.1 on 300W/WFLW)."""
    errors = _check_errors(errors, threshold, "failure_rate")
    return float((errors > threshold).mean())

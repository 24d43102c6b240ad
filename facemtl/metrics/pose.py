"""Head-pose errors (pure, batched numpy).

Euler inputs are ``[yaw, pitch, roll]`` in **degrees** (facemtl's order, see
:mod:`facemtl.geometry.rotations`), shape (N, 3). Rotation inputs are head-to-camera
matrices, shape (N, 3, 3). All errors are in degrees.

AFLW2000 protocol (Hopenet, FSA-Net, 6DRepNet): samples whose **ground-truth** angle is
outside [-99, 99] degrees in any axis are dropped before averaging; :func:`pose_mae` and
:func:`mean_signed_error` do this with ``filter_deg`` and report how many were dropped.

Empty input (N = 0) raises ``ValueError``; when every sample is filtered out the averages
are ``NaN`` and ``n`` is 0.
"""

from __future__ import annotations

import numpy as np

from facemtl.geometry.rotations import geodesic_distance

AXES = ("yaw", "pitch", "roll")


def _check_pair(pred: np.ndarray, gt: np.ndarray, shape: tuple[int, ...], what: str) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 1 + len(shape) or pred.shape[1:] != shape:
        raise ValueError(f"{what}: expected pred and gt of shape (N, {', '.join(map(str, shape))}), "
                         f"got {pred.shape} and {gt.shape}")
    if len(pred) == 0:
        raise ValueError(f"{what}: empty input (N = 0)")
    if not (np.isfinite(pred).all() and np.isfinite(gt).all()):
        raise ValueError(f"{what}: pred and gt must be finite (found NaN or inf)")
    return pred, gt


def _kept(gt: np.ndarray, filter_deg: float | None) -> np.ndarray:
    """The AFLW2000 filter: rows of ``gt`` (N, 3) whose three angles are all within ``filter_deg``."""
    return np.ones(len(gt), dtype=bool) if filter_deg is None else (np.abs(gt) <= filter_deg).all(axis=1)


def _pose_and_std(pred: np.ndarray, std: np.ndarray, gt: np.ndarray, filter_deg: float | None,
                  what: str) -> tuple[np.ndarray, np.ndarray]:
    """``|pred - gt|`` and ``std`` (M, 3) of the kept rows; all three inputs must be (N, 3)."""
    pred, std, gt = (np.asarray(a, dtype=np.float64) for a in (pred, std, gt))
    if not pred.shape == std.shape == gt.shape or pred.ndim != 2 or pred.shape[1] != 3:
        raise ValueError(f"{what}: pred, std and gt must all be (N, 3), got {pred.shape}, {std.shape}, {gt.shape}")
    keep = _kept(gt, filter_deg)
    return np.abs(pred - gt)[keep], std[keep]


def _angle_errors(pred: np.ndarray, gt: np.ndarray, filter_deg: float | None, wrapped: bool,
                  what: str) -> tuple[np.ndarray, int]:
    """Signed per-angle errors ``pred - gt`` (M, 3) of the kept samples, and how many were dropped."""
    pred, gt = _check_pair(pred, gt, (3,), what)
    keep = _kept(gt, filter_deg)
    d = pred[keep] - gt[keep]
    if wrapped:
        # 179 vs -179 is 2 degrees apart, not 358.
        d = (d + 180.0) % 360.0 - 180.0
    return d, int((~keep).sum())


def _summary(per_axis: np.ndarray, n: int, n_filtered: int) -> dict:
    out = {name: float(v) for name, v in zip(AXES, per_axis)}
    out["mean"] = float(np.mean(per_axis))
    out["n"] = n
    out["n_filtered"] = n_filtered
    return out


def pose_mae(pred: np.ndarray, gt: np.ndarray, filter_deg: float | None = 99.0, wrapped: bool = False) -> dict:
    """Mean absolute Euler-angle error in degrees, per angle and averaged over the three.

    Args:
        pred, gt: (N, 3) ``[yaw, pitch, roll]`` degrees.
        filter_deg: drop samples with ``|gt| > filter_deg`` in any axis (AFLW2000 protocol:
            99). ``None`` keeps every sample.
        wrapped: use the wrapped difference ``(d + 180) % 360 - 180`` (for full-range poses).

    Returns:
        ``dict(yaw, pitch, roll, mean, n, n_filtered)``: MAEs over the ``n`` kept samples
        (``mean`` = average of the three MAEs) and the number of samples dropped.
        The MAEs are ``NaN`` if every sample was dropped.
    """
    d, n_filtered = _angle_errors(pred, gt, filter_deg, wrapped, "pose_mae")
    per_axis = np.abs(d).mean(axis=0) if len(d) else np.full(3, np.nan)
    return _summary(per_axis, len(d), n_filtered)


def mean_signed_error(pred: np.ndarray, gt: np.ndarray, filter_deg: float | None = 99.0,
                      wrapped: bool = False) -> dict:
    """Mean of ``pred - gt`` per angle in degrees (the bias), same filtering as :func:`pose_mae`.

    Returns ``dict(yaw, pitch, roll, mean, n, n_filtered)``; ``mean`` averages the three biases.
    """
    d, n_filtered = _angle_errors(pred, gt, filter_deg, wrapped, "mean_signed_error")
    per_axis = d.mean(axis=0) if len(d) else np.full(3, np.nan)
    return _summary(per_axis, len(d), n_filtered)


def pitch_slope(pred: np.ndarray, gt: np.ndarray, filter_deg: float | None = 99.0) -> float:
    """Least-squares slope of predicted on true pitch, same filtering as :func:`pose_mae`.

    A slope under 1 turns a set's mean pitch into bias: a model that reads every face nearer
    level than it is. ``NaN`` for fewer than two samples or no spread in the true pitch.
    """
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    keep = _kept(gt, filter_deg)
    x, y = gt[keep, 1], pred[keep, 1]
    if len(x) < 2 or np.ptp(x) == 0:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])


def std_scale(pred: np.ndarray, std: np.ndarray, gt: np.ndarray, filter_deg: float | None = 99.0) -> np.ndarray:
    """Per-angle factor ``c`` (3,) with ``mean(((pred - gt) / (c * std))^2) = 1`` on this set: what
    turns a model's per-face uncertainty ``std`` (N, 3) into the standard deviation of its error
    (degrees; same filtering as :func:`pose_mae`, rows with a non-finite or non-positive ``std``
    left out). ``NaN`` for an angle with no usable row."""
    err, std = _pose_and_std(pred, std, gt, filter_deg, "std_scale")
    z2 = (err / std) ** 2
    ok = np.isfinite(z2) & (std > 0)
    with np.errstate(invalid="ignore"):
        return np.sqrt(np.where(ok, z2, 0).sum(0) / ok.sum(0))


def std_calibration(pred: np.ndarray, std: np.ndarray, gt: np.ndarray, filter_deg: float | None = 99.0) -> dict:
    """How well a per-angle uncertainty ``std`` (N, 3, degrees) describes the error ``pred - gt``,
    pooled over the three angles (same filtering as :func:`pose_mae`):

    * ``coverage``: share of errors within one ``std`` (0.68 for a calibrated Gaussian);
    * ``z_rms``: root mean square of ``error / std`` (1 when calibrated; :func:`std_scale` per angle);
    * ``rank``: Spearman correlation of ``std`` with ``|error|`` (0: the uncertainty says nothing
      about which faces are read worse).
    """
    err, sd = (a.ravel() for a in _pose_and_std(pred, std, gt, filter_deg, "std_calibration"))
    ok = np.isfinite(err) & np.isfinite(sd) & (sd > 0)
    err, sd = err[ok], sd[ok]
    if len(err) < 2:
        return {"coverage": float("nan"), "z_rms": float("nan"), "rank": float("nan")}
    ranks = [_average_ranks(v) for v in (sd, err)]
    rank = float(np.corrcoef(*ranks)[0, 1]) if min(np.ptp(r) for r in ranks) > 0 else float("nan")
    return {"coverage": float((err <= sd).mean()), "z_rms": float(np.sqrt(np.mean((err / sd) ** 2))), "rank": rank}


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """0-based ranks, tied values sharing their mean rank (Spearman's convention)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts
    return (first + (counts - 1) / 2)[inverse]


def geodesic_error(R_pred: np.ndarray, R_gt: np.ndarray) -> np.ndarray:
    """Per-sample angle in degrees ([0, 180]) of the rotation between ``R_pred`` and ``R_gt``, (N,)."""
    R_pred, R_gt = _check_pair(R_pred, R_gt, (3, 3), "geodesic_error")
    return geodesic_distance(R_pred, R_gt)


def vector_errors(R_pred: np.ndarray, R_gt: np.ndarray) -> np.ndarray:
    """Per-sample angle in degrees between matching **columns** of ``R_pred`` and ``R_gt``, (N, 3).

    Column k of a head-to-camera matrix is the head's k-th axis in camera coordinates
    (x: toward the subject's left, the image right for a frontal face; y: down; z: toward the
    back of the head): these are the three axis-vector errors of 6DRepNet360's MAEV. The
    angle is ``atan2(|a x b|, a . b)``: accurate near 0 and 180 degrees, and independent of
    the columns' lengths.
    """
    R_pred, R_gt = _check_pair(R_pred, R_gt, (3, 3), "vector_errors")
    a = np.swapaxes(R_pred, 1, 2)  # rows of the transpose = columns
    b = np.swapaxes(R_gt, 1, 2)
    sin = np.linalg.norm(np.cross(a, b), axis=-1)
    cos = np.sum(a * b, axis=-1)
    return np.rad2deg(np.arctan2(sin, cos))


def vector_mae(R_pred: np.ndarray, R_gt: np.ndarray) -> dict:
    """MAEV of 6DRepNet360: mean :func:`vector_errors` per axis vector and their average.

    Returns ``dict(x, y, z, mean)`` in degrees (x, y, z = columns 0, 1, 2).
    """
    per_vector = vector_errors(R_pred, R_gt).mean(axis=0)
    out = {name: float(v) for name, v in zip("xyz", per_vector)}
    out["mean"] = float(per_vector.mean())
    return out

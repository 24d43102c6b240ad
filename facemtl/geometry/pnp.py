"""Head pose from 2D landmarks and a 3D mean face (Perspective-n-Point).

Frames (see :mod:`facemtl.geometry.rotations`): the 3D model is in facemtl's head frame (mm,
x toward the image right for a frontal face, y down, z toward the back of the head), the
camera is OpenCV's (x right, y down, z forward), so the rotation ``solvePnP`` returns is
facemtl's head-to-camera ``R`` as is: ``p_cam = R @ p_head + t``.

Camera: :func:`camera_matrix` is a pinhole without distortion, focal length = image width
in pixels by default (a ~53 deg horizontal field of view, the usual guess for unknown
cameras, as in Hopenet's landmark baselines) and the principal point at ``(w / 2, h / 2)``.

Mean face: ``facemtl/assets/mean_face_68.npy`` (see ``scripts/compute_mean_face.py`` and
the ``.json`` beside it): the ICT-FaceKit neutral face's 68 landmarks, mm, centred on their
centroid, rotated by a fitted -2.87 deg pitch so that PnP returns 300W-LP / AFLW2000
``Pose_Para`` angles. ``mean_face(aligned=False)`` undoes that rotation (ICT's own frontal).

Point subsets (:data:`POINT_SUBSETS`, iBUG-68 0-based indices; each contains the previous):

* ``"5"``: nose tip 30, outer eye corners 36 and 45, mouth corners 48 and 54;
* ``"6"``: + chin 8 (the classic 6-point head-pose set);
* ``"7"``: + nose bridge top 27;
* ``"fan12"``: + inner eye corners 39 and 42, nostril wings 31 and 35 and subnasale 33.
  Hopenet (Table 1) computes FAN's pose from "12 points" without listing them; this is our
  choice of the 12 most rigid points (eyes, nose, mouth corners, chin);
* ``"51"``: every point but the jaw line (17-67);
* ``"68"``: all.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence, Union

import cv2
import numpy as np

from facemtl.geometry.rotations import euler_to_matrix, matrix_to_euler

MEAN_FACE_PATH = Path(__file__).resolve().parents[1] / "assets" / "mean_face_68.npy"

POINT_SUBSETS: dict[str, tuple[int, ...]] = {
    "5": (30, 36, 45, 48, 54),
    "6": (8, 30, 36, 45, 48, 54),
    "7": (8, 27, 30, 36, 45, 48, 54),
    "fan12": (8, 27, 30, 31, 33, 35, 36, 39, 42, 45, 48, 54),
    "51": tuple(range(17, 68)),
    "68": tuple(range(68)),
}

Subset = Union[str, Sequence[int], None]

# Fewer points leave the pose ambiguous (3 points have up to 4 solutions).
MIN_POINTS = 4


class PnPError(ValueError):
    """The pose cannot be solved from the given points (too few, degenerate or no valid solution)."""


def subset_indices(subset: Subset) -> np.ndarray:
    """Landmark indices of ``subset``: a :data:`POINT_SUBSETS` name, a sequence of indices, or None (all 68)."""
    if subset is None:
        return np.arange(68)
    if isinstance(subset, str):
        if subset not in POINT_SUBSETS:
            raise KeyError(f"unknown point subset {subset!r}; known: {', '.join(POINT_SUBSETS)}")
        return np.asarray(POINT_SUBSETS[subset])
    idx = np.asarray(subset, dtype=np.int64).ravel()
    if len(idx) == 0 or idx.min() < 0 or idx.max() > 67:
        raise ValueError(f"landmark indices must be in [0, 67], got {idx.tolist()}")
    return idx


@lru_cache(maxsize=1)
def _load_mean_face() -> tuple[np.ndarray, np.ndarray]:
    if not MEAN_FACE_PATH.is_file():
        raise FileNotFoundError(f"{MEAN_FACE_PATH}: mean face asset missing (run scripts/compute_mean_face.py)")
    face = np.load(MEAN_FACE_PATH).astype(np.float64)
    if face.shape != (68, 3):
        raise ValueError(f"{MEAN_FACE_PATH}: expected a (68, 3) table, got {face.shape}")
    meta_path = MEAN_FACE_PATH.with_suffix(".json")
    ypr = json.loads(meta_path.read_text())["alignment_ypr_deg"] if meta_path.is_file() else [0.0, 0.0, 0.0]
    return face, euler_to_matrix(np.asarray(ypr, dtype=np.float64))


def mean_face_alignment() -> np.ndarray:
    """``R_off`` (3, 3) of the stored mean face: ``aligned = R_off @ unaligned`` (about the centroid)."""
    return _load_mean_face()[1].copy()


def mean_face(subset: Subset = None, aligned: bool = True) -> np.ndarray:
    """The mean 3D face (N, 3) in mm, head frame, centred on the centroid of the 68 points.

    ``aligned=False`` gives ICT's own frontal (the stored table rotated back by its alignment).
    """
    face, R_off = _load_mean_face()
    if not aligned:
        face = face @ R_off  # = (R_off^T @ face^T)^T
    return face[subset_indices(subset)].copy()


def camera_matrix(width: float, height: float, focal: Optional[float] = None) -> np.ndarray:
    """Pinhole intrinsics (3, 3): ``fx = fy = focal`` (default: ``width``), principal point ``(w/2, h/2)``."""
    f = float(width if focal is None else focal)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def project_points(model_3d: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection of head points: ``K @ (R @ X + t)``, divided by depth. Batched.

    ``model_3d`` (..., N, 3), ``R`` (..., 3, 3), ``t`` (..., 3), ``K`` (3, 3) -> pixels (..., N, 2).
    """
    X = np.asarray(model_3d, dtype=np.float64)
    cam = X @ np.swapaxes(np.asarray(R, dtype=np.float64), -1, -2) + np.asarray(t, dtype=np.float64)[..., None, :]
    uvw = cam @ np.asarray(K, dtype=np.float64).T
    return uvw[..., :2] / uvw[..., 2:3]


def _degenerate(points: np.ndarray, rank: int) -> bool:
    """True if ``points`` (N, d) span fewer than ``rank`` dimensions (relative to their extent)."""
    s = np.linalg.svd(points - points.mean(axis=0), compute_uv=False)
    return s[0] == 0 or s[rank - 1] < 1e-6 * s[0]


def solve_pose(landmarks_2d: np.ndarray, model_3d: np.ndarray, K: np.ndarray,
               dist: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Head-to-camera ``R`` (3, 3) and ``t`` (3,) (model units) from 2D-3D correspondences.

    Rows where either point is not finite are dropped. Two initialisations, SQPnP and EPnP
    (``cv2.solvePnP``), are each refined by ``SOLVEPNP_ITERATIVE`` (Levenberg-Marquardt on the
    reprojection error); the solution in front of the camera with the lower reprojection
    error wins (two starts guard against the mirror ambiguity of flat or distant faces).

    Raises :class:`PnPError` for fewer than :data:`MIN_POINTS` usable points, collinear image
    points, a flat-or-collinear model, or no solution in front of the camera.
    """
    p2 = np.asarray(landmarks_2d, dtype=np.float64)
    p3 = np.asarray(model_3d, dtype=np.float64)
    if p2.ndim != 2 or p2.shape[1] != 2 or p3.shape != (len(p2), 3):
        raise PnPError(f"expected landmarks (N, 2) and model (N, 3), got {p2.shape} and {p3.shape}")
    ok = np.isfinite(p2).all(axis=1) & np.isfinite(p3).all(axis=1)
    p2, p3 = p2[ok], p3[ok]
    if len(p2) < MIN_POINTS:
        raise PnPError(f"need at least {MIN_POINTS} finite point pairs, got {len(p2)}")
    if _degenerate(p2, 2):
        raise PnPError("degenerate input: the image points are collinear (or all equal)")
    if _degenerate(p3, 2):
        raise PnPError("degenerate input: the model points are collinear (or all equal)")
    dist = np.zeros(5) if dist is None else np.asarray(dist, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    best = None
    for method in (cv2.SOLVEPNP_SQPNP, cv2.SOLVEPNP_EPNP):
        try:
            found, rvec, tvec = cv2.solvePnP(p3, p2, K, dist, flags=method)
            if not found:
                continue
            found, rvec, tvec = cv2.solvePnP(p3, p2, K, dist, rvec, tvec, useExtrinsicGuess=True,
                                             flags=cv2.SOLVEPNP_ITERATIVE)
        except cv2.error:
            continue
        rvec, tvec = rvec.ravel(), tvec.ravel()
        if not (found and np.isfinite(rvec).all() and np.isfinite(tvec).all() and tvec[2] > 0):
            continue
        R = cv2.Rodrigues(rvec)[0]  # = rotations.axis_angle_to_matrix(rvec), faster for one
        if dist.any():
            reproj, _ = cv2.projectPoints(p3, rvec, tvec, K, dist)
            err = np.mean((reproj.reshape(-1, 2) - p2) ** 2)
        else:
            err = np.mean((project_points(p3, R, tvec, K) - p2) ** 2)
        if best is None or err < best[0]:
            best = (err, R, tvec)
    if best is None:
        raise PnPError(f"solvePnP found no pose in front of the camera for {len(p2)} points")
    return best[1], best[2]


def landmarks_to_pose(landmarks: np.ndarray, image_size: tuple[float, float], subset: Subset = "68",
                      model_3d: Optional[np.ndarray] = None, focal: Optional[float] = None,
                      errors: str = "raise") -> np.ndarray:
    """``[yaw, pitch, roll]`` degrees from 68 landmarks (68, 2) or a batch (B, 68, 2).

    Args:
        landmarks: iBUG-68 pixels; NaN rows are ignored.
        image_size: ``(width, height)`` of the image the landmarks are in.
        subset: the points to use (:data:`POINT_SUBSETS` name or indices).
        model_3d: 68 x 3 head model; default the aligned :func:`mean_face`.
        focal: focal length in pixels; default the image width (:func:`camera_matrix`).
        errors: ``"raise"`` (a :class:`PnPError`) or ``"nan"`` (that sample's angles are NaN).

    Returns:
        (3,) or (B, 3) through :func:`~facemtl.geometry.rotations.matrix_to_euler`.
    """
    if errors not in ("raise", "nan"):
        raise ValueError(f"errors must be 'raise' or 'nan', got {errors!r}")
    lm = np.asarray(landmarks, dtype=np.float64)
    single = lm.ndim == 2
    lm = lm[None] if single else lm
    if lm.ndim != 3 or lm.shape[1:] != (68, 2):
        raise ValueError(f"expected landmarks (68, 2) or (B, 68, 2), got {np.shape(landmarks)}")
    model = mean_face() if model_3d is None else np.asarray(model_3d, dtype=np.float64)
    if model.shape != (68, 3):
        raise ValueError(f"model_3d must be (68, 3), got {model.shape}")
    idx = subset_indices(subset)
    K = camera_matrix(image_size[0], image_size[1], focal)
    out = np.full((len(lm), 3), np.nan)
    for i, points in enumerate(lm):
        try:
            R, _ = solve_pose(points[idx], model[idx], K)
        except PnPError:
            if errors == "raise":
                raise
            continue
        out[i] = matrix_to_euler(R)
    return out[0] if single else out



def pose_and_std_from_landmarks(landmarks: np.ndarray, image_size: tuple[float, float], subset: Subset = "68",
                                model_3d: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """PnP pose ``[yaw, pitch, roll]`` (3,) degrees of one face and its per-angle standard
    deviation (3,) degrees, from the fit's own residuals.

    The deviation is the Gauss-Newton covariance ``s^2 (J^T J)^-1`` of the reprojection error,
    with ``J`` taken over the three angles and the translation at the solution and
    ``s^2 = RSS / (2N - 6)``: a face whose landmarks disagree with the mean face, or whose
    points barely constrain an angle (pitch of a flat, distant face), gets a large deviation.
    NaN (both) when PnP fails.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    model = mean_face() if model_3d is None else np.asarray(model_3d, dtype=np.float64)
    idx = subset_indices(subset)
    K = camera_matrix(image_size[0], image_size[1])
    nan = np.full(3, np.nan)
    try:
        R, t = solve_pose(lm[idx], model[idx], K)
    except PnPError:
        return nan, nan
    ok = np.isfinite(lm[idx]).all(axis=1)
    p2, p3 = lm[idx][ok], model[idx][ok]
    ypr = matrix_to_euler(R)

    def residuals(x: np.ndarray) -> np.ndarray:
        return (project_points(p3, euler_to_matrix(x[:3]), x[3:], K) - p2).ravel()

    x = np.r_[ypr, t]
    r = residuals(x)
    steps = np.r_[np.full(3, 1e-3), np.abs(t) * 1e-6 + 1e-6]
    J = np.stack([(residuals(x + np.eye(6)[i] * h) - residuals(x - np.eye(6)[i] * h)) / (2 * h)
                  for i, h in enumerate(steps)], axis=1)
    dof = max(len(r) - 6, 1)
    try:
        cov = np.linalg.inv(J.T @ J) * (r @ r) / dof
    except np.linalg.LinAlgError:
        return ypr, nan
    return ypr, np.sqrt(np.clip(np.diag(cov)[:3], 0, None))


def fuse_poses(a: np.ndarray, a_std: np.ndarray, b: np.ndarray, b_std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance mean of two ``[yaw, pitch, roll]`` estimates per angle, (..., 3) each,
    and its deviation. Where one estimate (or its deviation) is NaN the other is returned."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    wa = 1.0 / np.square(np.asarray(a_std, dtype=np.float64))
    wb = 1.0 / np.square(np.asarray(b_std, dtype=np.float64))
    a_ok, b_ok = np.isfinite(a) & np.isfinite(wa), np.isfinite(b) & np.isfinite(wb)
    wa, wb = np.where(a_ok, wa, 0.0), np.where(b_ok, wb, 0.0)
    total = wa + wb
    with np.errstate(invalid="ignore", divide="ignore"):
        fused = (wa * np.where(a_ok, a, 0.0) + wb * np.where(b_ok, b, 0.0)) / total
        std = np.sqrt(1.0 / total)
    return np.where(total > 0, fused, np.nan), np.where(total > 0, std, np.nan)

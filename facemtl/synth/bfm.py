"""Pose labels in the 300W-LP / AFLW2000-3D ``Pose_Para`` frame: the Basel Face Model at 68 landmarks
fitted to 2D landmarks (the way 300W-LP's labels were made from the 300-W annotations).

The model (``facemodels/bfm/`` in the shared folder, its README gives source and axes) is
``X = mean + shape_basis @ a + expr_basis @ b`` at the 68 iBUG landmark vertices, with 40
identity and 10 expression components and a Gaussian prior on ``a`` and ``b`` (the statistics
of 3DDFA's 300W-LP fits). Here it is held in facemtl's head frame (mm, x to the subject's left,
y down, z away from the camera, :mod:`facemtl.geometry.rotations`): ``head = diag(1, -1, -1) @
bfm / 1000``, so the fitted head-to-camera rotation ``R`` gives the ``Pose_Para`` angles through
:func:`facemtl.geometry.rotations.matrix_to_euler`.

Camera: weak perspective, as 300W-LP's: a head point ``X`` lands at ``s * (R X)[:2] + t`` pixels
(0-based, y down). The fit minimises the landmark error in units of ``sigma`` pixels plus the
prior, by ``scipy.optimize.least_squares``.

Contour points 0-16 of a manual 68-point annotation follow the visible outline of the cheek, not
fixed vertices; on near-frontal faces (where the 300-W photos mostly are) the two nearly agree,
and the contour keeps a lower weight. Fitting the 51 inner points alone tilts the pitch by
about +7.7 deg on annotator-style points (issue 11's measurement), so all 68 are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facemtl.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_euler
from facemtl.synth.fit import finite_landmarks

# BFM (micrometres, y up, z toward the camera) -> facemtl head frame (mm, y down, z away).
BFM_TO_HEAD = np.diag([1.0, -1.0, -1.0]) / 1000.0
CONTOUR_WEIGHT = 0.5


@dataclass(frozen=True)
class BFM68:
    """The BFM at the 68 landmarks in facemtl's head frame (mm). Bases are (68, 3, K)."""

    mean: np.ndarray
    shape_basis: np.ndarray
    expr_basis: np.ndarray
    shape_mean: np.ndarray
    shape_std: np.ndarray
    expr_mean: np.ndarray
    expr_std: np.ndarray

    @classmethod
    def load(cls, folder: str | Path) -> "BFM68":
        """Read ``bfm_mean68.npy``, ``bfm_shape68_basis.npy``, ``bfm_expr68_basis.npy`` and
        ``bfm_coef_stats.npz`` from ``folder`` (the shared ``facemodels/bfm``)."""
        folder = Path(folder)
        files = ["bfm_mean68.npy", "bfm_shape68_basis.npy", "bfm_expr68_basis.npy", "bfm_coef_stats.npz"]
        missing = [f for f in files if not (folder / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder}: BFM files missing: {', '.join(missing)}")
        mean = np.load(folder / files[0]) @ BFM_TO_HEAD.T
        shape = np.einsum("ij,njk->nik", BFM_TO_HEAD, np.load(folder / files[1]))
        expr = np.einsum("ij,njk->nik", BFM_TO_HEAD, np.load(folder / files[2]))
        stats = np.load(folder / files[3])
        return cls(mean, shape, expr, stats["shape_mean"], stats["shape_std"], stats["expr_mean"], stats["expr_std"])

    def landmarks(self, shape: np.ndarray | None = None, expr: np.ndarray | None = None) -> np.ndarray:
        """(68, 3) mm for coefficients ``shape`` (40,) and ``expr`` (10,) (the mean face when None)."""
        out = self.mean.copy()
        if shape is not None:
            out += self.shape_basis @ shape
        if expr is not None:
            out += self.expr_basis @ expr
        return out


@dataclass
class BFMFit:
    """``rotation`` (3, 3) head-to-camera; ``scale`` px/mm; ``offset`` (2,) px; ``shape`` (40,),
    ``expr`` (10,) coefficients; ``errors`` (68,) px distance of each fitted point to its input."""

    rotation: np.ndarray
    scale: float
    offset: np.ndarray
    shape: np.ndarray
    expr: np.ndarray
    errors: np.ndarray

    @property
    def pose(self) -> np.ndarray:
        """``[yaw, pitch, roll]`` degrees, ``Pose_Para`` convention."""
        return matrix_to_euler(self.rotation)


def weak_project(points: np.ndarray, rotation: np.ndarray, scale: float, offset: np.ndarray) -> np.ndarray:
    """Head-frame points (N, 3) mm -> pixels (N, 2): ``scale * (R X)[:2] + offset``."""
    return scale * (points @ rotation[:2].T) + offset


def _initial_pose(X: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Scaled rotation nearest to the least-squares affine camera from ``X`` (N, 3) to ``q`` (N, 2)."""
    Xc, qc = X - X.mean(0), q - q.mean(0)
    M = np.linalg.lstsq(Xc, qc, rcond=None)[0].T  # (2, 3)
    U, S, Vt = np.linalg.svd(M, full_matrices=False)
    rows = U @ Vt  # the nearest 2x3 with orthonormal rows
    R = np.vstack([rows, np.cross(rows[0], rows[1])])
    scale = float(S.mean())
    return R, scale, q.mean(0) - scale * X.mean(0) @ R[:2].T


def fit_bfm(landmarks: np.ndarray, model: BFM68, sigma: float | None = None,
            contour_weight: float = CONTOUR_WEIGHT, prior: float = 1.0) -> BFMFit:
    """Fit pose, 40 identity and 10 expression coefficients to 68 2D landmarks (pixels, NaN = missing).

    ``sigma`` px is the landmark noise the prior is weighed against (default 2 % of the landmark
    box diagonal); ``prior`` scales the prior's strength.
    """
    from scipy.optimize import least_squares

    q, ok = finite_landmarks(landmarks, 10)
    qz = np.where(ok[:, None], q, 0.0)
    sigma = sigma if sigma is not None else 0.02 * float(np.linalg.norm(np.ptp(q[ok], axis=0)))
    w = (np.where(np.arange(68) < 17, contour_weight, 1.0) * ok / sigma)[:, None]
    n_s, n_e = model.shape_basis.shape[2], model.expr_basis.shape[2]
    R0, s0, t0 = _initial_pose(model.mean[ok], q[ok])
    x0 = np.concatenate([matrix_to_axis_angle(R0), [np.log(s0)], t0, model.shape_mean, model.expr_mean])
    p_mean = np.concatenate([model.shape_mean, model.expr_mean])
    p_std = np.concatenate([model.shape_std, model.expr_std])

    def unpack(x):
        return axis_angle_to_matrix(x[:3]), np.exp(x[3]), x[4:6], x[6:6 + n_s], x[6 + n_s:]

    def residuals(x):
        R, s, t, a, b = unpack(x)
        r = (weak_project(model.landmarks(a, b), R, s, t) - qz) * w
        return np.concatenate([r.ravel(), prior * (x[6:] - p_mean) / p_std])

    x = least_squares(residuals, x0, method="lm", x_scale="jac").x
    R, s, t, a, b = unpack(x)
    errors = np.linalg.norm(weak_project(model.landmarks(a, b), R, s, t) - q, axis=1)
    return BFMFit(R, float(s), t, a, b, np.where(ok, errors, np.nan))

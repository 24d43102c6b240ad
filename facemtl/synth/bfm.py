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
fixed vertices. On near-frontal faces the two nearly agree; on turned faces a fit to fixed jaw
vertices reads the yaw short (2 deg at 15-30 deg, 5 deg at 30-45 deg on turned views with exact
labels). :class:`ContourMarch` lets the jaw slide to the silhouette, as 300W-LP's landmark
marching did; ``fit_bfm(..., contour=ContourMarch.load())`` is the fit for annotator-style
points, the plain fit the one for fixed vertices (AFLW2000's own landmarks, renders). The contour
keeps a lower weight either way. Fitting the 51 inner points alone tilts the pitch by about
+7.7 deg on annotator-style points (issue 11's measurement), so all 68 are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facemtl.geometry.rotations import axis_angle_to_matrix, euler_to_matrix, matrix_to_axis_angle, matrix_to_euler
from facemtl.synth.facemodel import FaceModel
from facemtl.synth.fit import SLIDING, contour_candidates, finite_landmarks, slide_contour

# BFM (micrometres, y up, z toward the camera) -> facemtl head frame (mm, y down, z away).
BFM_TO_HEAD = np.diag([1.0, -1.0, -1.0]) / 1000.0
CONTOUR_WEIGHT = 0.5
# Refits with the contour slid to the previous fit's silhouette (the first fit takes the fixed
# jaw; its rotation decides where the jaw slides for the next).
MARCH_ITERATIONS = 2


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


@dataclass(frozen=True)
class ContourMarch:
    """Where the 300-W jaw points lie on a turned head: the offsets (68, 3) mm, head frame, from the
    BFM's fixed jaw vertices to the cheek silhouette.

    The BFM here is 68 vertices with no surface, so the silhouette is the mean ICT head's
    (:func:`facemtl.synth.fit.slide_contour`, the rule the turned views' jaws are drawn by): a
    sliding point moves by its ICT silhouette vertex at the rotation minus the one at the same
    pitch and roll and yaw 0, so a frontal face keeps the BFM's own jaw (where annotators draw it
    there). On the 300-W photos' manual points it lowers the fit's residual on turned faces, jaw
    and inner points alike (docs/MODEL_CARD.md, "Jaw marching in the labels")."""

    model: FaceModel
    candidates: list[np.ndarray]

    @classmethod
    def load(cls, model: FaceModel | None = None) -> "ContourMarch":
        """From the ICT head (``FaceModel.load()`` when not given)."""
        model = model or FaceModel.load()
        return cls(model, contour_candidates(model))

    def offsets(self, rotation: np.ndarray) -> np.ndarray:
        """(68, 3) mm for the head-to-camera ``rotation`` (3, 3); zero off the sliding points."""
        _, pitch, roll = matrix_to_euler(rotation)
        front = euler_to_matrix(np.array([0.0, pitch, roll]))
        slid, slid0 = (slide_contour(self.model, R, None, None, self.candidates) for R in (rotation, front))
        out = np.zeros((68, 3))
        out[SLIDING] = self.model.vertices(index=slid[SLIDING]) - self.model.vertices(index=slid0[SLIDING])
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
            contour_weight: float = CONTOUR_WEIGHT, prior: float = 1.0,
            contour: ContourMarch | None = None) -> BFMFit:
    """Fit pose, 40 identity and 10 expression coefficients to 68 2D landmarks (pixels, NaN = missing).

    ``sigma`` px is the landmark noise the prior is weighed against (default 2 % of the landmark
    box diagonal); ``prior`` scales the prior's strength. ``contour``: jaw points on the visible
    outline (annotator-style, e.g. 300-W's), refitted :data:`MARCH_ITERATIONS` times with the jaw
    slid to the last fit's silhouette; ``None``: the jaw points are the BFM's fixed vertices.
    """
    from scipy.optimize import least_squares

    q, ok = finite_landmarks(landmarks, 10)
    qz = np.where(ok[:, None], q, 0.0)
    sigma = sigma if sigma is not None else 0.02 * float(np.linalg.norm(np.ptp(q[ok], axis=0)))
    w = (np.where(np.arange(68) < 17, contour_weight, 1.0) * ok / sigma)[:, None]
    n_s = model.shape_basis.shape[2]
    R0, s0, t0 = _initial_pose(model.mean[ok], q[ok])
    x0 = np.concatenate([matrix_to_axis_angle(R0), [np.log(s0)], t0, model.shape_mean, model.expr_mean])
    p_mean = np.concatenate([model.shape_mean, model.expr_mean])
    p_std = np.concatenate([model.shape_std, model.expr_std])

    def unpack(x):
        return axis_angle_to_matrix(x[:3]), np.exp(x[3]), x[4:6], x[6:6 + n_s], x[6 + n_s:]

    def residuals(x, offsets):
        R, s, t, a, b = unpack(x)
        r = (weak_project(model.landmarks(a, b) + offsets, R, s, t) - qz) * w
        return np.concatenate([r.ravel(), prior * (x[6:] - p_mean) / p_std])

    x, offsets = x0, np.zeros((68, 3))
    for i in range(1 + (MARCH_ITERATIONS if contour is not None else 0)):
        if i:
            offsets = contour.offsets(unpack(x)[0])
        x = least_squares(residuals, x, method="lm", x_scale="jac", args=(offsets,)).x
    R, s, t, a, b = unpack(x)
    errors = np.linalg.norm(weak_project(model.landmarks(a, b) + offsets, R, s, t) - q, axis=1)
    return BFMFit(R, float(s), t, a, b, np.where(ok, errors, np.nan))

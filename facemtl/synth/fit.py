"""Fit the ICT face model to 68 2D landmarks of a photo (pose, identity, expression).

Camera: pinhole, focal ``f`` pixels, principal point at the image centre ``((w-1)/2, (h-1)/2)``
(0-based pixel centres), OpenCV axes; a head point ``X`` (mm, head frame of
:mod:`facemtl.synth.facemodel`) lands at ``p = f (R X + t)[:2] / (R X + t)[2] + c``. ``R`` is
the head-to-camera rotation of :mod:`facemtl.geometry.rotations`, so
``matrix_to_euler(R)`` is the ``Pose_Para``-convention pose of the photo.

The fit minimises (Levenberg-Marquardt with the expression weights projected onto their
bounds; analytic Jacobian except for the 3 rotation parameters) the weighted landmark
reprojection error in units of ``sigma`` pixels plus
Gaussian priors: identity weights ~ N(0, 1), expression weights in [0, 1] pulled toward 0.
The face contour (iBUG 0-16) is not a fixed set of vertices on a real face seen at an angle:
it is the silhouette of the cheek. Contour points 0-5 and 11-16 therefore slide ("landmark
marching", Zhu et al., CVPR 2015, the method behind 300W-LP): between solves, each takes the
vertex of its horizontal band of the cheek that lies outermost in the image. The chin points
6-10 stay fixed; the whole contour gets a lower weight (its annotation is the least precise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from facemtl.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_euler
from facemtl.synth.facemodel import FaceModel

# Per-landmark weights: contour 0.5 (its annotation slides along the cheek), the rest 1.
CONTOUR_WEIGHT = 0.5
TOL = 1e-5
SLIDING = np.r_[0:6, 11:17]
# Expression blendshapes used in the fit: those that move the 68 landmarks (not the gaze).
FIT_EXPRESSIONS_EXCLUDE = ("eyeLook",)


@dataclass
class FitResult:
    """A fitted face: camera, pose and shape, with the reprojection error of its landmarks.

    ``rotation`` (3, 3) head-to-camera; ``translation`` (3,) mm; ``focal`` px; ``center``
    (2,) px; ``identity`` (n_identity,) and ``expression`` (53,) model weights;
    ``landmark_vertex`` (68,) the model vertex matched to each landmark (contour slid);
    ``errors`` (68,) px distance of each projected landmark to the input; ``image_size``
    (w, h).
    """

    rotation: np.ndarray
    translation: np.ndarray
    focal: float
    center: np.ndarray
    identity: np.ndarray
    expression: np.ndarray
    landmark_vertex: np.ndarray
    errors: np.ndarray
    image_size: tuple[int, int]
    meta: dict = field(default_factory=dict)

    @property
    def pose(self) -> np.ndarray:
        """``[yaw, pitch, roll]`` degrees (``Pose_Para`` convention)."""
        return matrix_to_euler(self.rotation)

    @property
    def reprojection_error(self) -> float:
        """Mean landmark distance in pixels over the given (finite) landmarks."""
        return float(np.nanmean(self.errors))

    def camera_matrix(self) -> np.ndarray:
        """Intrinsics ``K`` (3, 3)."""
        return np.array([[self.focal, 0, self.center[0]], [0, self.focal, self.center[1]], [0, 0, 1.0]])

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """Head-frame points (..., 3) mm -> camera frame (..., 3) mm."""
        return points @ self.rotation.T + self.translation

    def project(self, points: np.ndarray) -> np.ndarray:
        """Head-frame points (..., 3) mm -> pixels (..., 2)."""
        return _project(self.to_camera(points), self.focal, self.center)

    def vertices(self, model: FaceModel, index: Optional[np.ndarray] = None) -> np.ndarray:
        """The fitted head's vertices in the head frame (V, 3) mm (or at ``index``)."""
        return model.vertices(self.identity, self.expression, index=index)


def _project(xc: np.ndarray, f: float, c: np.ndarray) -> np.ndarray:
    return f * xc[..., :2] / xc[..., 2:3] + c


def contour_candidates(model: FaceModel, band_mm: float = 2.5) -> list[np.ndarray]:
    """Cheek vertices a sliding contour landmark may take, one array per point of :data:`SLIDING`.

    For contour landmark ``k`` at neutral height ``y_k``: face vertices on its side within
    ``band_mm`` of that height, no further from the mid-plane than ``|x_k| + 3`` mm (which
    leaves out the ears), from 60 mm before to 30 mm behind it in depth.
    """
    x = model.neutral[: model.part_mask("face").sum()]
    out = []
    for k in SLIDING:
        p = model.neutral[model.landmark_index[k]]
        sel = (
            (np.abs(x[:, 1] - p[1]) < band_mm)
            & (np.sign(x[:, 0]) == np.sign(p[0]))
            & (np.abs(x[:, 0]) <= abs(p[0]) + 3)
            & (x[:, 2] > p[2] - 60)
            & (x[:, 2] < p[2] + 30)
        )
        out.append(np.union1d(np.flatnonzero(sel), [model.landmark_index[k]]))
    return out


def slide_contour(
    model: FaceModel,
    rotation: np.ndarray,
    identity: np.ndarray,
    expression: np.ndarray,
    candidates: list[np.ndarray],
) -> np.ndarray:
    """Landmark vertices (68,) with contour points 0-5, 11-16 moved to the cheek silhouette.

    The silhouette point of a band is its vertex furthest outward along the head's x axis as
    seen in the image (the projected head x axis ``R[:2, 0]``); a weak-perspective choice,
    which is what the 2D contour annotation follows.
    """
    out = model.landmark_index.copy()
    axis = rotation[:2, 0] / max(np.linalg.norm(rotation[:2, 0]), 1e-9)
    for k, cand in zip(SLIDING, candidates):
        xc = model.vertices(identity, expression, index=cand) @ rotation.T
        s = xc[:, :2] @ axis
        out[k] = cand[np.argmin(s) if k < 8 else np.argmax(s)]
    return out


def finite_landmarks(landmarks: np.ndarray, min_points: int) -> tuple[np.ndarray, np.ndarray]:
    """``landmarks`` as (68, 2) float64 and the mask of its finite rows; ``ValueError`` for another
    shape or fewer than ``min_points`` finite points."""
    q = np.asarray(landmarks, dtype=np.float64)
    if q.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {q.shape}")
    ok = np.isfinite(q).all(1)
    if ok.sum() < min_points:
        raise ValueError(f"need at least {min_points} finite landmarks, got {ok.sum()}")
    return q, ok


def fit_landmarks(
    landmarks: np.ndarray,
    image_size: tuple[int, int],
    model: Optional[FaceModel] = None,
    focal: Optional[float] = None,
    n_identity: int = 40,
    fit_expression: bool = True,
    slide: bool = True,
    sigma: Optional[float] = None,
    expression_prior: float = 3.0,
    rounds: int = 3,
) -> FitResult:
    """Fit pose, identity and expression to 68 iBUG landmarks of one image.

    ``landmarks`` (68, 2) 0-based pixels (NaN rows are ignored); ``image_size`` (w, h).
    ``focal`` px defaults to the focal that puts the face about 1 m from the camera
    (near-orthographic, like 300W-LP's weak perspective; the photo's true focal is unknown).
    ``sigma`` px is the landmark noise the priors are weighed against (default 2 % of the
    landmarks' bounding-box diagonal). ``expression_prior`` is the Gaussian prior's precision
    on expression weights (larger = more neutral). ``slide`` enables contour landmark
    marching; ``rounds`` alternations of solve and slide.
    """
    model = model or FaceModel.load()
    q, ok = finite_landmarks(landmarks, 6)
    w_img, h_img = image_size
    center = np.array([(w_img - 1) / 2, (h_img - 1) / 2])
    weights = np.where(np.arange(68) < 17, CONTOUR_WEIGHT, 1.0) * ok
    qz = np.where(ok[:, None], q, 0.0)

    n_identity = min(n_identity, model.n_identity)
    expr_ids = (
        np.array([i for i, n in enumerate(model.expr_names) if not n.startswith(FIT_EXPRESSIONS_EXCLUDE)])
        if fit_expression
        else np.zeros(0, dtype=np.int64)
    )
    mean_lm = model.landmarks_3d().astype(np.float64)
    diag = np.linalg.norm(np.nanmax(q, 0) - np.nanmin(q, 0))
    sigma = sigma if sigma is not None else 0.02 * diag
    focal = focal if focal is not None else _metre_focal(q, ok, mean_lm)

    R0, t0 = _init_pose(mean_lm, q, ok, focal, center)
    lm_vertex = model.landmark_index.copy()
    candidates = contour_candidates(model) if slide else None
    n_e = len(expr_ids)
    x0 = np.concatenate([matrix_to_axis_angle(R0), t0, np.zeros(n_identity), np.zeros(n_e)])
    lower = np.r_[np.full(6 + n_identity, -np.inf), np.zeros(n_e)]
    upper = np.r_[np.full(6 + n_identity, np.inf), np.ones(n_e)]
    prior = np.r_[np.ones(n_identity), np.full(n_e, np.sqrt(expression_prior))]

    for _ in range(max(rounds, 1)):
        X0 = model.neutral[lm_vertex].astype(np.float64)
        A = model.id_basis[:n_identity, lm_vertex].astype(np.float64)  # (K, 68, 3)
        B = model.expr_basis[expr_ids][:, lm_vertex].astype(np.float64)  # (E, 68, 3)
        residuals, jacobian = _landmark_problem(X0, A, B, focal, center, qz, weights / sigma, prior)
        x0 = _levenberg_marquardt(residuals, jacobian, x0, lower, upper)
        if not slide:
            break
        expression = np.zeros(model.n_expression)
        expression[expr_ids] = x0[6 + n_identity :]
        new = slide_contour(model, axis_angle_to_matrix(x0[:3]), x0[6 : 6 + n_identity], expression, candidates)
        if np.array_equal(new, lm_vertex):
            break
        lm_vertex = new

    expression = np.zeros(model.n_expression)
    expression[expr_ids] = x0[6 + n_identity :]
    result = FitResult(
        rotation=axis_angle_to_matrix(x0[:3]),
        translation=x0[3:6],
        focal=float(focal),
        center=center,
        identity=x0[6 : 6 + n_identity],
        expression=expression,
        landmark_vertex=lm_vertex,
        errors=np.zeros(68),
        image_size=(int(w_img), int(h_img)),
    )
    proj = result.project(model.vertices(result.identity, expression, index=lm_vertex))
    result.errors = np.where(ok, np.linalg.norm(proj - qz, axis=1), np.nan)
    return result


def _metre_focal(q: np.ndarray, ok: np.ndarray, mean_lm: np.ndarray) -> float:
    """The focal (px) that puts a face of the mean face's size about 1 m from the camera, its size
    in pixels read from the spread of the inner (non-contour) landmarks ``q`` where ``ok``."""
    inner = ok.copy()
    inner[:17] = False
    scale = np.linalg.norm(np.nanstd(q[inner], 0)) / np.linalg.norm(mean_lm[inner].std(0))  # px per mm
    return 1000.0 * scale


def _landmark_problem(X0: np.ndarray, A: np.ndarray, B: np.ndarray, focal: float, center: np.ndarray,
                      qz: np.ndarray, sw: np.ndarray, prior: np.ndarray):
    """``(residuals, jacobian)`` of the landmark fit for :func:`_levenberg_marquardt`.

    Parameters ``p`` = axis-angle (3), translation (3, mm), identity then expression weights.
    The shape is ``X0 + p_id . A + p_expr . B`` (68, 3); residuals are the projected points' pixel
    errors to ``qz`` weighted by ``sw`` (68,), then ``prior``-weighted parameters (the Gaussian priors).
    """
    n_identity = len(A)

    def shape(p):
        return X0 + np.tensordot(p[6 : 6 + n_identity], A, 1) + np.tensordot(p[6 + n_identity :], B, 1)

    def residuals(p):
        xc = shape(p) @ axis_angle_to_matrix(p[:3]).T + p[3:6]
        r = (_project(xc, focal, center) - qz) * sw[:, None]
        return np.concatenate([r.ravel(), p[6:] * prior])

    def jacobian(p):
        R = axis_angle_to_matrix(p[:3])
        X = shape(p)
        xc = X @ R.T + p[3:6]
        z = xc[:, 2:3]
        # d(pixel)/d(camera point), (68, 2, 3).
        J = np.zeros((68, 2, 3))
        J[:, 0, 0] = J[:, 1, 1] = (focal / z)[:, 0]
        J[:, :, 2] = -focal * xc[:, :2] / z**2
        J *= sw[:, None, None]
        out = np.zeros((136 + len(p) - 6, len(p)))
        # Rotation by central differences (3 parameters).
        for i in range(3):
            d = np.zeros(3)
            d[i] = 1e-6
            xp = X @ axis_angle_to_matrix(p[:3] + d).T
            xm = X @ axis_angle_to_matrix(p[:3] - d).T
            out[:136, i] = np.einsum("nij,nj->ni", J, (xp - xm) / 2e-6).ravel()
        out[:136, 3:6] = J.reshape(136, 3)
        basis = np.concatenate([A, B]) @ R.T  # (K+E, 68, 3) camera-frame directions
        out[:136, 6:] = np.einsum("nij,knj->nik", J, basis).reshape(136, -1)
        out[136:, 6:] = np.diag(prior)
        return out

    return residuals, jacobian


def _levenberg_marquardt(residuals, jacobian, x, lower, upper, iterations: int = 40) -> np.ndarray:
    """Minimise ``|residuals(x)|^2`` within box bounds (steps are clipped onto the box).

    Normal equations by ``einsum`` rather than BLAS: these matrices are small (~230 x 100),
    and a multi-threaded BLAS on a busy machine is 100x slower on them than one core.
    """
    r = residuals(x)
    cost, lam = r @ r, 1e-3
    for _ in range(iterations):
        J = jacobian(x)
        H = np.einsum("ij,ik->jk", J, J)
        g = np.einsum("ij,i->j", J, r)
        damp = np.diag(H) + 1e-9
        while True:
            x_new = np.clip(x - np.linalg.solve(H + lam * np.diag(damp), g), lower, upper)
            r_new = residuals(x_new)
            cost_new = r_new @ r_new
            if cost_new < cost or lam > 1e8:
                break
            lam *= 4
        if cost_new >= cost:
            break
        converged = cost - cost_new < TOL * cost
        x, r, cost, lam = x_new, r_new, cost_new, max(lam / 3, 1e-7)
        if converged:
            break
    return x


def _init_pose(mean_lm: np.ndarray, q: np.ndarray, ok: np.ndarray, focal: float, center: np.ndarray):
    """Rigid pose of the mean face from the inner (non-contour) landmarks by OpenCV's PnP."""
    import cv2

    use = ok.copy()
    use[:17] = False
    if use.sum() < 6:
        use = ok
    K = np.array([[focal, 0, center[0]], [0, focal, center[1]], [0, 0, 1.0]])
    obj, img = mean_lm[use].astype(np.float64), q[use].astype(np.float64)
    # Start in front of the camera at the distance that matches the focal's scale.
    rvec0 = np.zeros(3)
    tvec0 = np.r_[(img.mean(0) - center) / focal * 1000.0, 1000.0]
    okp, rvec, tvec = cv2.solvePnP(obj, img, K, None, rvec0.copy(), tvec0.copy(), True, cv2.SOLVEPNP_ITERATIVE)
    rvec, tvec = np.ravel(rvec), np.ravel(tvec)
    if not okp or tvec[2] <= 0:
        return np.eye(3), tvec0
    return axis_angle_to_matrix(rvec), tvec

"""Rotation representations and facemtl's head-pose convention (pure, batched numpy).

Every function works on arrays with any leading dims ``...``.

Frames
    The camera frame is OpenCV's: x right, y down, z forward (away from the camera).
    The head frame equals the camera frame for a frontal face: x toward the image right,
    y down, z from the face toward the back of the head (the nose tip has negative z).
    A rotation matrix ``R`` maps head coordinates to camera coordinates:
    ``p_cam = R @ p_head (+ t)``.

Elementary rotations
    ``rot_x``, ``rot_y``, ``rot_z`` are the standard right-handed (active, counter-clockwise
    about the axis when it points at the viewer) rotations, angles in radians.

Euler angles (``ypr``)
    ``ypr = [yaw, pitch, roll]`` in **degrees**, the 300W-LP / AFLW2000-3D ``Pose_Para``
    convention::

        R = rot_x(-pitch) @ rot_y(yaw) @ rot_z(roll)

    Positive yaw turns the nose to the image's left (the subject's right), positive pitch
    lifts the nose up (looking up), positive roll turns the face clockwise on screen.
    In the BFM frame (y up, z toward the viewer) the same rotation is
    ``(Rz(roll) Ry(yaw) Rx(pitch))^T``, 3DDFA's Matlab ``RotationMatrix``. This was measured
    on the AFLW2000-3D ``.mat`` files (see tests/test_rotations.py).

Other representations
    * 6D (Zhou et al. 2019): the first two **columns** of ``R``, ``[R[:, 0], R[:, 1]]``, shape (..., 6).
    * Quaternion: unit, **(w, x, y, z)** (scalar first), ``w >= 0`` on output.
    * Axis-angle: rotation vector ``angle * axis``, radians (OpenCV ``rvec``), norm in [0, pi].
"""

from __future__ import annotations

import numpy as np

# Below this cos(yaw) the yaw is +-90 deg (gimbal lock): pitch and roll share one axis.
_GIMBAL_EPS = 1e-6


def _elementary(angle: np.ndarray, i: int, j: int) -> np.ndarray:
    """Rotation by ``angle`` (rad) in the (i, j) coordinate plane, from axis i toward axis j."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    R = np.zeros(angle.shape + (3, 3))
    R[..., :, :] = np.eye(3)
    R[..., i, i], R[..., i, j] = c, -s
    R[..., j, i], R[..., j, j] = s, c
    return R


def rot_x(angle: np.ndarray) -> np.ndarray:
    """Right-handed rotation about x by ``angle`` radians: y toward z. (...,) -> (..., 3, 3)."""
    return _elementary(angle, 1, 2)


def rot_y(angle: np.ndarray) -> np.ndarray:
    """Right-handed rotation about y by ``angle`` radians: z toward x. (...,) -> (..., 3, 3)."""
    return _elementary(angle, 2, 0)


def rot_z(angle: np.ndarray) -> np.ndarray:
    """Right-handed rotation about z by ``angle`` radians: x toward y. (...,) -> (..., 3, 3)."""
    return _elementary(angle, 0, 1)


def euler_to_matrix(ypr_deg: np.ndarray) -> np.ndarray:
    """Head-to-camera rotation from ``[yaw, pitch, roll]`` degrees, (..., 3) -> (..., 3, 3).

    ``R = rot_x(-pitch) @ rot_y(yaw) @ rot_z(roll)`` (see the module docstring): positive yaw
    puts the nose left in the image, positive pitch moves it up, positive roll is clockwise.
    """
    yaw, pitch, roll = np.moveaxis(np.deg2rad(np.asarray(ypr_deg, dtype=np.float64)), -1, 0)
    return rot_x(-pitch) @ rot_y(yaw) @ rot_z(roll)


def matrix_to_euler(R: np.ndarray) -> np.ndarray:
    """``[yaw, pitch, roll]`` degrees of a head-to-camera rotation, (..., 3, 3) -> (..., 3).

    Exact inverse of :func:`euler_to_matrix` for ``|yaw| < 90``; yaw is returned in
    [-90, 90], pitch and roll in (-180, 180]. With

        R = [[cy cr,                -cy sr,               sy     ],
             [cp sr + sp sy cr,     cp cr - sp sy sr,     -sp cy ],
             [sp sr - cp sy cr,     sp cr + cp sy sr,     cp cy  ]]

    (``p = -pitch``): ``yaw = atan2(R02, hypot(R00, R01))``, ``roll = atan2(-R01, R00)``,
    ``pitch = atan2(R12, R22)``. At gimbal lock (``|yaw| = 90``) only pitch -+ roll is defined;
    roll is set to 0 and the whole in-plane angle goes to pitch.
    """
    R = np.asarray(R, dtype=np.float64)
    cy = np.hypot(R[..., 0, 0], R[..., 0, 1])
    yaw = np.arctan2(R[..., 0, 2], cy)
    regular = cy > _GIMBAL_EPS
    pitch = np.where(regular, np.arctan2(R[..., 1, 2], R[..., 2, 2]), -np.arctan2(R[..., 2, 1], R[..., 1, 1]))
    roll = np.where(regular, np.arctan2(-R[..., 0, 1], R[..., 0, 0]), 0.0)
    return np.rad2deg(np.stack([yaw, pitch, roll], axis=-1))


def pose_para_to_ypr(pose_para: np.ndarray) -> np.ndarray:
    """300W-LP / AFLW2000 ``Pose_Para`` (radians ``pitch, yaw, roll, ...``) -> ``[yaw, pitch, roll]`` degrees.

    Accepts (..., k) with k >= 3 (the full 7-vector or just the angles); extra entries are ignored.
    """
    p = np.asarray(pose_para, dtype=np.float64)
    return np.rad2deg(p[..., [1, 0, 2]])


def ypr_to_pose_para(ypr_deg: np.ndarray) -> np.ndarray:
    """``[yaw, pitch, roll]`` degrees -> ``Pose_Para`` angles ``[pitch, yaw, roll]`` radians, (..., 3)."""
    ypr = np.asarray(ypr_deg, dtype=np.float64)
    return np.deg2rad(ypr[..., [1, 0, 2]])


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def matrix_to_6d(R: np.ndarray) -> np.ndarray:
    """First two columns of ``R`` (Zhou et al. 2019), (..., 3, 3) -> (..., 6) = ``[R[:,0], R[:,1]]``."""
    R = np.asarray(R, dtype=np.float64)
    return np.concatenate([R[..., :, 0], R[..., :, 1]], axis=-1)


def sixd_to_matrix(x: np.ndarray) -> np.ndarray:
    """Rotation from a 6D vector ``[a1, a2]`` (two column guesses) by Gram-Schmidt, (..., 6) -> (..., 3, 3).

    ``b1 = a1/|a1|``, ``b2`` = the part of ``a2`` orthogonal to ``b1``, normalized, ``b3 = b1 x b2``;
    ``R = [b1 b2 b3]`` as columns. Inverse of :func:`matrix_to_6d` on rotations.
    """
    x = np.asarray(x, dtype=np.float64)
    b1 = _normalize(x[..., 0:3])
    a2 = x[..., 3:6]
    b2 = _normalize(a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)


def nearest_rotation(M: np.ndarray) -> np.ndarray:
    """The rotation closest to ``M`` in the Frobenius norm (polar decomposition by SVD), (..., 3, 3) -> (..., 3, 3).

    Strips a uniform scale and float noise; the mean of nearby rotations goes back to a rotation."""
    U, _, Vt = np.linalg.svd(np.asarray(M, dtype=np.float64))
    d = np.sign(np.linalg.det(U @ Vt))
    U = U.copy()
    U[..., :, 2] *= d[..., None]
    return U @ Vt


_MIRROR_X = np.diag([-1.0, 1.0, 1.0])


def mirror_rotation(R: np.ndarray) -> np.ndarray:
    """The head rotation seen in the horizontally mirrored image, (..., 3, 3) -> (..., 3, 3).

    Mirroring negates x in the camera frame and, the face being left-right symmetric, in the head
    frame: ``M R M`` with ``M = diag(-1, 1, 1)``. Yaw and roll change sign, pitch is kept. Its own inverse.
    """
    return _MIRROR_X @ np.asarray(R, dtype=np.float64) @ _MIRROR_X


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation from a quaternion **(w, x, y, z)**, (..., 4) -> (..., 3, 3). ``q`` is normalized first."""
    w, x, y, z = np.moveaxis(_normalize(np.asarray(q, dtype=np.float64)), -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], axis=-1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=-1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1),
        ],
        axis=-2,
    )


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """Unit quaternion **(w, x, y, z)** with ``w >= 0`` of a rotation, (..., 3, 3) -> (..., 4).

    Shepperd's method: every candidate is computed from the largest of ``w, |x|, |y|, |z|``,
    which keeps it accurate near 180 deg.
    """
    R = np.asarray(R, dtype=np.float64)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    # 4*q_i^2 for i = w, x, y, z; the largest one is safe to divide by.
    sq = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], axis=-1)
    d21, d02, d10 = R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]
    s10, s20, s21 = R[..., 1, 0] + R[..., 0, 1], R[..., 2, 0] + R[..., 0, 2], R[..., 2, 1] + R[..., 1, 2]
    # Row k: 4*q_k times (w, x, y, z).
    candidates = np.stack(
        [
            np.stack([sq[..., 0], d21, d02, d10], axis=-1),
            np.stack([d21, sq[..., 1], s10, s20], axis=-1),
            np.stack([d02, s10, sq[..., 2], s21], axis=-1),
            np.stack([d10, s20, s21, sq[..., 3]], axis=-1),
        ],
        axis=-2,
    )
    best = np.argmax(sq, axis=-1)[..., None, None]
    q = np.take_along_axis(candidates, best, axis=-2)[..., 0, :]
    q = _normalize(q)
    return np.where(q[..., :1] < 0, -q, q)


def axis_angle_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rotation from a rotation vector (axis * angle, radians; OpenCV ``rvec``), (..., 3) -> (..., 3, 3)."""
    v = np.asarray(rotvec, dtype=np.float64)
    half = 0.5 * np.linalg.norm(v, axis=-1, keepdims=True)
    # sin(half)/|v| = 0.5 * sinc(half/pi) stays smooth at angle 0.
    q = np.concatenate([np.cos(half), 0.5 * np.sinc(half / np.pi) * v], axis=-1)
    return quaternion_to_matrix(q)


def matrix_to_axis_angle(R: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, radians, angle in [0, pi]) of a rotation, (..., 3, 3) -> (..., 3)."""
    q = matrix_to_quaternion(R)
    w, v = q[..., :1], q[..., 1:]
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    # angle = 2 atan2(|v|, w); angle/|v| -> 2/w as |v| -> 0 (w ~ 1 there; the floor only keeps
    # the unused branch finite at 180 deg, where w = 0).
    scale = np.where(n > 1e-12, 2 * np.arctan2(n, w) / np.maximum(n, 1e-12), 2 / np.maximum(w, 0.5))
    return scale * v


def geodesic_distance(R1: np.ndarray, R2: np.ndarray) -> np.ndarray:
    """Angle in **degrees** of the rotation taking ``R1`` to ``R2`` (in [0, 180]), (..., 3, 3) x2 -> (...).

    Computed as ``atan2(sin, cos)`` of ``R1^T R2`` (sin from its skew part, cos from its trace),
    which is accurate at 0 and 180 deg and needs no clipping of an ``arccos`` argument.
    """
    R = np.swapaxes(np.asarray(R1, dtype=np.float64), -1, -2) @ np.asarray(R2, dtype=np.float64)
    cos = 0.5 * (np.trace(R, axis1=-2, axis2=-1) - 1)
    skew = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    sin = 0.5 * np.linalg.norm(skew, axis=-1)
    return np.rad2deg(np.arctan2(sin, cos))


def line_of_sight(point: np.ndarray) -> np.ndarray:
    """The rotation taking the optical axis (0, 0, 1) onto the ray through a camera-frame point,
    about the axis perpendicular to both (no roll), (..., 3) -> (..., 3, 3).

    A head at camera-frame rotation ``R`` whose face lies at ``point`` looks, in a crop centred on
    the face, like a head at ``line_of_sight(point).T @ R`` seen on the optical axis: that is the
    pose a crop shows, and the one weak-perspective labels (300W-LP, AFLW2000 ``Pose_Para``)
    give. Off the axis the two differ by the ray's angle, about ``atan(offset / depth)``.
    """
    p = np.asarray(point, dtype=np.float64)
    if p.shape[-1] != 3:
        raise ValueError(f"line_of_sight: points must be (..., 3), got {p.shape}")
    if np.any(p[..., 2] <= 0):
        raise ValueError("line_of_sight: points must lie in front of the camera (z > 0)")
    d = p / np.linalg.norm(p, axis=-1, keepdims=True)
    axis = np.stack([-d[..., 1], d[..., 0], np.zeros_like(d[..., 0])], -1)  # z x d
    s = np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = np.arctan2(s, d[..., 2:3])
    return axis_angle_to_matrix(np.where(s > 1e-12, axis / np.maximum(s, 1e-12), 0.0) * angle)

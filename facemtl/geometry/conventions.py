"""Converters between facemtl's head rotation and the conventions of other tools and datasets.

facemtl's ``R`` maps head coordinates to OpenCV camera coordinates (x right, y down, z forward);
the head frame equals the camera frame for a frontal face (nose tip at negative z). Its Euler
angles are ``ypr = [yaw, pitch, roll]`` degrees with ``R = rot_x(-pitch) @ rot_y(yaw) @ rot_z(roll)``
(see :mod:`facemtl.geometry.rotations`): +yaw turns the nose to the image's left (the subject
turns to their right), +pitch looks up, +roll tilts the face clockwise on screen.

Every ``from_<tool>`` returns ``R`` (..., 3, 3); every ``to_<tool>`` takes ``R``. All are batched.
:func:`from_convention` / :func:`convert` dispatch by name (see :data:`CONVENTIONS`).

Sources (read in each project's code; "inferred" where the project does not state it):

* BIWI: Hopenet ``code/datasets.py`` (class ``BIWI``) and FSA-Net ``data/TYY_create_db_biwi.py``.
* OpenFace 2: ``Utilities/RotationHelpers.h`` (``Euler2RotationMatrix``), its projection code.
* MediaPipe: face_geometry docs (metric space) and ``canonical_face_model.obj``.
* 6DRepNet: ``sixdrepnet/utils.py`` (``get_R``, ``compute_euler_angles_from_rotation_matrices``)
  and ``sixdrepnet/datasets.py`` (how 300W-LP / AFLW2000 ``Pose_Para`` become targets).
* img2pose: ``utils/pose_operations.py`` and ``utils/json_loader_300wlp.py`` (``convert_aflw``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from facemtl.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_euler,
    nearest_rotation,
    rot_x,
    rot_y,
    rot_z,
)

# Rotation by 180 deg about x: swaps OpenCV axes (y down, z forward) and OpenGL / BFM / MediaPipe
# axes (y up, z toward the viewer). Its own inverse.
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


def _swap(R: np.ndarray) -> np.ndarray:
    return np.swapaxes(R, -1, -2)


# ---- OpenCV --------------------------------------------------------------------------------------


def from_opencv_rvec(rvec: np.ndarray) -> np.ndarray:
    """``R`` from an OpenCV rotation vector (``solvePnP`` / ``Rodrigues``), (..., 3) radians -> (..., 3, 3).

    This is plain axis-angle in the camera frame: it is facemtl's ``R`` exactly when the 3D model
    points given to ``solvePnP`` are in facemtl's head frame (x toward the image right, y down,
    z toward the back of the head), e.g. ``mean68_mm_xright_ydown_zaway.npy`` of the ICT face model.
    """
    return axis_angle_to_matrix(rvec)


def to_opencv_rvec(R: np.ndarray) -> np.ndarray:
    """OpenCV rotation vector (axis * angle, radians) of ``R``, (..., 3, 3) -> (..., 3)."""
    return matrix_to_axis_angle(R)


# ---- BIWI Kinect Head Pose ------------------------------------------------------------------------


def from_biwi(M: np.ndarray) -> np.ndarray:
    """``R`` from the 3x3 matrix of a BIWI ``*_pose.txt`` file, rows as written in the file.

    Hopenet and FSA-Net read the file rows into ``M``, set ``R' = M.T`` and take
    ``roll = -atan2(R'10, R'00)``, ``yaw = -atan2(-R'20, hypot(R'21, R'22))``,
    ``pitch = atan2(R'21, R'22)`` (degrees). Solving these for ``M`` gives
    ``M = rot_x(-pitch) @ rot_y(yaw) @ rot_z(roll)``, i.e. ``M`` *is* facemtl's ``R``, and
    ``matrix_to_euler(M)`` returns the yaw/pitch/roll those papers report (same branch, |yaw| <= 90).
    That these angles share the 300W-LP signs is inferred from Hopenet and FSA-Net evaluating their
    300W-LP-trained models on BIWI with small errors; BIWI's own readme does not state the frame.
    """
    return np.asarray(M, dtype=np.float64).copy()


def to_biwi(R: np.ndarray) -> np.ndarray:
    """The 3x3 BIWI pose-file matrix (rows as in the file) of ``R``; the inverse of :func:`from_biwi`."""
    return np.asarray(R, dtype=np.float64).copy()


# ---- OpenFace 2 -----------------------------------------------------------------------------------


def from_openface(pose_R: np.ndarray) -> np.ndarray:
    """``R`` from OpenFace 2 ``[pose_Rx, pose_Ry, pose_Rz]`` (radians), (..., 3) -> (..., 3, 3).

    OpenFace's ``Euler2RotationMatrix`` builds ``Rx(pose_Rx) @ Ry(pose_Ry) @ Rz(pose_Rz)`` with
    standard right-handed elementary rotations, and projects ``R @ X + T`` with ``x = fx X/Z + cx``,
    ``y = fy Y/Z + cy``: an OpenCV camera frame. Its 3D landmark output puts the mouth nearer the
    camera (smaller Z) than the jaw, so its face model has the nose at negative z like facemtl's
    (inferred). Hence ``R`` is used as is and ``pose_Rx = -pitch``, ``pose_Ry = yaw``,
    ``pose_Rz = roll`` (radians): head up gives negative ``pose_Rx``, turning to one's own right
    positive ``pose_Ry``.
    """
    rx, ry, rz = np.moveaxis(np.asarray(pose_R, dtype=np.float64), -1, 0)
    return rot_x(rx) @ rot_y(ry) @ rot_z(rz)


def to_openface(R: np.ndarray) -> np.ndarray:
    """OpenFace 2 ``[pose_Rx, pose_Ry, pose_Rz]`` radians of ``R``, (..., 3, 3) -> (..., 3)."""
    yaw, pitch, roll = np.moveaxis(np.deg2rad(matrix_to_euler(R)), -1, 0)
    return np.stack([-pitch, yaw, roll], axis=-1)


# ---- MediaPipe face geometry -----------------------------------------------------------------------


def from_mediapipe(matrix: np.ndarray) -> np.ndarray:
    """``R`` from MediaPipe's facial transformation matrix, (..., 4, 4) or (..., 3, 3) -> (..., 3, 3).

    The matrix maps MediaPipe's canonical face model (right-handed, x toward the image right,
    y up, z out of the face toward the viewer: the nose tip has z ~ +7.5) into its metric camera
    space (right-handed, camera at the origin looking down -z, y up). Both frames are facemtl's
    rotated 180 deg about x, so ``R = F @ M3 @ F`` with ``F = diag(1, -1, -1)``. Any uniform scale
    in the 3x3 block is removed first. (Translation, cm in MediaPipe's space, maps as ``F @ t``.)
    """
    M = np.asarray(matrix, dtype=np.float64)[..., :3, :3]
    return _FLIP_YZ @ nearest_rotation(M) @ _FLIP_YZ


def to_mediapipe(R: np.ndarray) -> np.ndarray:
    """The 3x3 rotation block of MediaPipe's facial transformation matrix for ``R`` (..., 3, 3)."""
    return _FLIP_YZ @ np.asarray(R, dtype=np.float64) @ _FLIP_YZ


# ---- 6DRepNet -------------------------------------------------------------------------------------


def from_6drepnet(R6: np.ndarray) -> np.ndarray:
    """``R`` from a 6DRepNet rotation matrix (its target / its 6D head's output), (..., 3, 3).

    6DRepNet trains on ``get_R(pitch, yaw, roll) = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` of the 300W-LP
    ``Pose_Para`` radians (right-handed elementary rotations); this is the transpose of 3DDFA's
    BFM-frame rotation, so ``R = F @ R6.T @ F`` with ``F = diag(1, -1, -1)``. Its
    ``compute_euler_angles_from_rotation_matrices`` returns (pitch, yaw, roll) radians equal to
    facemtl's pitch, yaw, roll. Its raw 6D output is two columns orthonormalised like
    :func:`~facemtl.geometry.rotations.sixd_to_matrix`, so ``from_6drepnet(sixd_to_matrix(out))``.
    """
    return _FLIP_YZ @ _swap(np.asarray(R6, dtype=np.float64)) @ _FLIP_YZ


def to_6drepnet(R: np.ndarray) -> np.ndarray:
    """6DRepNet's rotation matrix for ``R`` (..., 3, 3); the inverse of :func:`from_6drepnet`."""
    return _FLIP_YZ @ _swap(np.asarray(R, dtype=np.float64)) @ _FLIP_YZ


# ---- img2pose -------------------------------------------------------------------------------------


def from_img2pose(dof: np.ndarray) -> np.ndarray:
    """``R`` from img2pose's 6DoF ``[rx, ry, rz, tx, ty, tz]`` (or just ``[rx, ry, rz]``), (..., 3|6).

    img2pose's rotation is an OpenCV rotation vector (radians) in the camera of the full image
    (its intrinsics: focal ``w + h``, centre at the image centre; use its global ``dofs``, not the
    per-box ones). Its 300W-LP labels are ``rotvec((R_xyz(pitch, -yaw, -roll))^T)`` with scipy's
    extrinsic "xyz", which equals ``rot_x(-pitch) @ rot_y(yaw) @ rot_z(roll)``: facemtl's ``R``.
    The translation is in the units of its own 3D reference face and is ignored here.
    """
    return axis_angle_to_matrix(np.asarray(dof, dtype=np.float64)[..., :3])


def to_img2pose(R: np.ndarray) -> np.ndarray:
    """img2pose's rotation vector ``[rx, ry, rz]`` (radians) of ``R``, (..., 3, 3) -> (..., 3)."""
    return matrix_to_axis_angle(R)


# ---- dispatch by name ------------------------------------------------------------------------------

CONVENTIONS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "opencv": (from_opencv_rvec, to_opencv_rvec),
    "mediapipe": (from_mediapipe, to_mediapipe),
    "openface": (from_openface, to_openface),
    "6drepnet": (from_6drepnet, to_6drepnet),
    "img2pose": (from_img2pose, to_img2pose),
    "biwi": (from_biwi, to_biwi),
}
"""name -> (from_<name>, to_<name>): what each convention's rotation looks like.

opencv: rvec (3,) radians; mediapipe: 3x3 block (accepts 4x4); openface: [Rx, Ry, Rz] radians;
6drepnet: 3x3; img2pose: rvec (3,) radians (accepts the 6DoF); biwi: 3x3 pose-file matrix.
"""


def _lookup(name: str) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    try:
        return CONVENTIONS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown rotation convention {name!r}; known: {', '.join(CONVENTIONS)}") from None


def from_convention(x: np.ndarray, name: str) -> np.ndarray:
    """facemtl ``R`` (..., 3, 3) from a rotation given in convention ``name`` (see :data:`CONVENTIONS`)."""
    return _lookup(name)[0](x)


def convert(R: np.ndarray, to: str) -> np.ndarray:
    """Express facemtl's ``R`` (..., 3, 3) in convention ``to`` (see :data:`CONVENTIONS`)."""
    return _lookup(to)[1](R)


__all__ = [
    "CONVENTIONS",
    "convert",
    "from_6drepnet",
    "from_biwi",
    "from_convention",
    "from_img2pose",
    "from_mediapipe",
    "from_openface",
    "from_opencv_rvec",
    "to_6drepnet",
    "to_biwi",
    "to_img2pose",
    "to_mediapipe",
    "to_openface",
    "to_opencv_rvec",
]

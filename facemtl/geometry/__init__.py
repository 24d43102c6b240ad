"""Geometry: rotations and head-pose conventions (numpy; torch twins in ``rotations_torch``)."""

from facemtl.geometry.conventions import convert, from_convention, read_biwi_pose
from facemtl.geometry.rotations import (
    axis_angle_to_matrix,
    euler_to_matrix,
    geodesic_distance,
    matrix_to_6d,
    matrix_to_axis_angle,
    matrix_to_euler,
    matrix_to_quaternion,
    pose_para_to_ypr,
    quaternion_to_matrix,
    rot_x,
    rot_y,
    rot_z,
    sixd_to_matrix,
    ypr_to_pose_para,
)

__all__ = [
    "axis_angle_to_matrix",
    "convert",
    "from_convention",
    "euler_to_matrix",
    "geodesic_distance",
    "matrix_to_6d",
    "matrix_to_axis_angle",
    "matrix_to_euler",
    "matrix_to_quaternion",
    "pose_para_to_ypr",
    "quaternion_to_matrix",
    "read_biwi_pose",
    "rot_x",
    "rot_y",
    "rot_z",
    "sixd_to_matrix",
    "ypr_to_pose_para",
]

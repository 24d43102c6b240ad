"""Differentiable torch twins of :mod:`facemtl.geometry.rotations` for training.

Same conventions, shapes and units as the numpy functions (``ypr`` in degrees,
``R = rot_x(-pitch) @ rot_y(yaw) @ rot_z(roll)`` head-to-OpenCV-camera, 6D = first two columns),
batched over leading dims and keeping the input's dtype and device.
"""

from __future__ import annotations

import math

import torch

_GIMBAL_EPS = 1e-6


def euler_to_matrix(ypr_deg: torch.Tensor) -> torch.Tensor:
    """Head-to-camera rotation from ``[yaw, pitch, roll]`` degrees, (..., 3) -> (..., 3, 3).

    ``R = rot_x(-pitch) @ rot_y(yaw) @ rot_z(roll)``, written out (``p = -pitch``)::

        [[cy cr,             -cy sr,             sy    ],
         [cp sr + sp sy cr,  cp cr - sp sy sr,   -sp cy],
         [sp sr - cp sy cr,  sp cr + cp sy sr,   cp cy ]]
    """
    yaw, pitch, roll = torch.deg2rad(ypr_deg).unbind(-1)
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    cp, sp = torch.cos(-pitch), torch.sin(-pitch)
    cr, sr = torch.cos(roll), torch.sin(roll)
    rows = [
        [cy * cr, -cy * sr, sy],
        [cp * sr + sp * sy * cr, cp * cr - sp * sy * sr, -sp * cy],
        [sp * sr - cp * sy * cr, sp * cr + cp * sy * sr, cp * cy],
    ]
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def matrix_to_euler(R: torch.Tensor) -> torch.Tensor:
    """``[yaw, pitch, roll]`` degrees of a head-to-camera rotation, (..., 3, 3) -> (..., 3).

    Same formulas as the numpy :func:`facemtl.geometry.rotations.matrix_to_euler`
    (yaw in [-90, 90]; at gimbal lock roll = 0).
    """
    cy = torch.hypot(R[..., 0, 0], R[..., 0, 1])
    yaw = torch.atan2(R[..., 0, 2], cy)
    regular = cy > _GIMBAL_EPS
    pitch = torch.where(regular, torch.atan2(R[..., 1, 2], R[..., 2, 2]), -torch.atan2(R[..., 2, 1], R[..., 1, 1]))
    roll = torch.where(regular, torch.atan2(-R[..., 0, 1], R[..., 0, 0]), torch.zeros_like(yaw))
    return torch.rad2deg(torch.stack([yaw, pitch, roll], dim=-1))


def matrix_to_6d(R: torch.Tensor) -> torch.Tensor:
    """First two columns of ``R``, (..., 3, 3) -> (..., 6) = ``[R[:,0], R[:,1]]``."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def sixd_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """Rotation from a 6D vector by Gram-Schmidt, (..., 6) -> (..., 3, 3); columns ``b1, b2, b1 x b2``."""
    b1 = torch.nn.functional.normalize(x[..., 0:3], dim=-1)
    a2 = x[..., 3:6]
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def _geodesic_radians(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    R = R1.transpose(-1, -2) @ R2
    cos = 0.5 * (R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1)
    skew = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    # sqrt with a floor: its gradient stays finite when R1 == R2 (arccos's would be infinite).
    sin = 0.5 * torch.sqrt((skew * skew).sum(-1).clamp_min(1e-12))
    return torch.atan2(sin, cos)


def geodesic_distance(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Angle in **degrees** between rotations, (..., 3, 3) x2 -> (...); differentiable everywhere.

    ``atan2(sin, cos)`` of ``R1^T R2`` as in numpy; the sine is floored at 5e-7, so identical
    rotations read ~3e-5 deg instead of 0 but the gradient never blows up.
    """
    return _geodesic_radians(R1, R2) * (180.0 / math.pi)

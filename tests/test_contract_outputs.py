"""The contract's output mappings: the mirror image's outputs and the fusion of two pose heads."""

from __future__ import annotations

import numpy as np

from facemtl.contract import FLIP_68, fuse_pose_heads, mirror_outputs, model_reading
from facemtl.geometry.rotations import euler_to_matrix, geodesic_distance, matrix_to_euler, rot_z


def outputs(n: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ypr = rng.uniform(-60, 60, (n, 3))
    return {"pose": ypr.astype(np.float32), "pose_std": rng.uniform(1, 9, (n, 3)).astype(np.float32),
            "rotation": euler_to_matrix(ypr).astype(np.float32), "landmarks": rng.uniform(0, 1, (n, 68, 2)),
            "visibility": rng.uniform(0, 1, (n, 68)), "expression": rng.dirichlet(np.ones(7), n)}


def test_mirror_outputs_is_its_own_inverse_and_mirrors_each_output():
    out = outputs()
    once, twice = mirror_outputs(out), mirror_outputs(mirror_outputs(out))
    for k, v in out.items():
        np.testing.assert_allclose(twice[k], v, atol=1e-6)
    np.testing.assert_allclose(once["pose"], out["pose"] * [-1, 1, -1])
    angles = matrix_to_euler(once["rotation"].astype(np.float64))
    np.testing.assert_allclose(angles, out["pose"] * [-1, 1, -1], atol=1e-3)
    np.testing.assert_allclose(once["landmarks"][:, 36], [1, 0] + [-1, 1] * out["landmarks"][:, 45])  # eye corners
    np.testing.assert_allclose(once["visibility"], out["visibility"][:, FLIP_68])
    np.testing.assert_array_equal(once["pose_std"], out["pose_std"])
    np.testing.assert_array_equal(once["expression"], out["expression"])


def test_two_pose_heads_meet_halfway():
    out = outputs()
    R = out["rotation"].astype(np.float64)
    out["rotation"] = (R @ rot_z(np.deg2rad(12.0))).astype(np.float32)  # the 6D head 12 deg off the bins
    fused = fuse_pose_heads(out)
    np.testing.assert_allclose(geodesic_distance(fused["rotation"], R), 6.0, atol=0.01)
    np.testing.assert_allclose(euler_to_matrix(fused["pose"].astype(np.float64)), fused["rotation"], atol=1e-4)
    np.testing.assert_array_equal(fused["pose_std"], out["pose_std"])
    assert fuse_pose_heads({"pose": out["pose"]}) == {"pose": out["pose"]}  # one head: as it is


def test_model_reading_flips_then_fuses():
    """A stub that reads every crop, mirrored or not, as the same turned head: averaging it with its
    mirror image (yaw and roll negated back) cancels yaw and roll; one pass keeps them."""
    out = outputs(1)
    stub = lambda crops: {k: np.repeat(v, len(crops), axis=0) for k, v in out.items()}  # noqa: E731
    crops = np.zeros((1, 8, 8, 3), np.uint8)
    np.testing.assert_allclose(model_reading(stub, flip=False)(crops)["pose"], out["pose"], atol=1e-3)
    averaged = model_reading(stub)(crops)
    np.testing.assert_allclose(averaged["pose"][:, [0, 2]], 0, atol=1e-3)
    assert "flip_gap" in averaged and averaged["flip_gap"].shape == (1,)

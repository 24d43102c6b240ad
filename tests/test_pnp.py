"""PnP: exact round trips on projected mean faces, subsets, the mean-face asset, clear failures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facemtl.geometry.pnp import (
    MEAN_FACE_PATH,
    POINT_SUBSETS,
    PnPError,
    camera_matrix,
    landmarks_to_pose,
    mean_face,
    mean_face_alignment,
    project_points,
    solve_pose,
    subset_indices,
)
from facemtl.geometry.rotations import euler_to_matrix, geodesic_distance, matrix_to_euler


def _random_poses(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ypr = rng.uniform([-85, -45, -30], [85, 45, 30], size=(n, 3))
    t = np.column_stack([rng.uniform(-40, 40, (n, 2)), rng.uniform(300, 900, n)])
    return ypr, t


def test_camera_matrix():
    np.testing.assert_array_equal(camera_matrix(640, 480), [[640, 0, 320], [0, 640, 240], [0, 0, 1]])
    assert camera_matrix(640, 480, focal=800)[0, 0] == camera_matrix(640, 480, focal=800)[1, 1] == 800


def test_project_points_by_hand():
    K = camera_matrix(200, 100, focal=100)
    X = np.array([[0.0, 0.0, 0.0], [10.0, -20.0, 50.0]])
    # a 90 deg yaw turns head +x to camera -z: R @ [10, -20, 50] = [50, -20, -10]
    R = euler_to_matrix(np.array([90.0, 0.0, 0.0]))
    uv = project_points(X, R, np.array([0.0, 0.0, 100.0]), K)
    np.testing.assert_allclose(uv, [[100, 50], [100 + 100 * 50 / 90, 50 - 100 * 20 / 90]], atol=1e-9)


def test_mean_face_asset():
    face = mean_face()
    assert face.shape == (68, 3) and np.isfinite(face).all()
    np.testing.assert_allclose(face.mean(axis=0), 0, atol=1e-9)  # centred on the centroid
    # head frame: subject's right eye corner (36) on the image left, chin below, nose toward the camera
    assert face[36, 0] < 0 < face[45, 0] and face[8, 1] > face[27, 1] and face[30, 2] < face[0, 2]
    np.testing.assert_allclose(face[45, 0] - face[36, 0], 89.2, atol=2)  # outer eye corners ~9 cm apart
    meta = json.loads(MEAN_FACE_PATH.with_suffix(".json").read_text())
    # aligned = R_off @ unaligned, the offset a pure pitch (both faces are left-right symmetric)
    R_off = euler_to_matrix(np.array(meta["alignment_ypr_deg"]))
    np.testing.assert_allclose(mean_face_alignment(), R_off)
    np.testing.assert_allclose(mean_face(aligned=False) @ R_off.T, face, atol=1e-9)
    assert meta["alignment_ypr_deg"][0] == meta["alignment_ypr_deg"][2] == 0 != meta["alignment_ypr_deg"][1]
    np.testing.assert_allclose(face[[36, 45], 0], -face[[45, 36], 0], atol=1e-3)  # symmetric
    assert mean_face("5").shape == (5, 3)
    np.testing.assert_array_equal(mean_face([30, 8]), face[[30, 8]])


def test_mean_face_matches_shared_ict_reference(shared):
    ref = np.load(shared / "facemodels" / "ict-facekit" / "mean68_mm_xright_ydown_zaway.npy")
    np.testing.assert_allclose(mean_face(aligned=False), ref - ref.mean(axis=0), atol=1e-3)


@pytest.mark.parametrize("subset", list(POINT_SUBSETS))
def test_round_trip_every_subset(subset):
    K = camera_matrix(450, 450)
    X = mean_face()
    ypr, t = _random_poses(40, seed=len(subset))
    lm = project_points(X, euler_to_matrix(ypr), t, K)
    est = landmarks_to_pose(lm, (450, 450), subset)
    assert est.shape == (40, 3)
    assert np.abs(est - ypr).max() < 0.1


def test_solve_pose_returns_r_and_t():
    K = camera_matrix(640, 480, focal=900)
    X = mean_face()
    R_true, t_true = euler_to_matrix(np.array([35.0, -20.0, 12.0])), np.array([15.0, -8.0, 600.0])
    lm = project_points(X, R_true, t_true, K)
    R, t = solve_pose(lm, X, K)
    assert geodesic_distance(R, R_true) < 1e-4
    np.testing.assert_allclose(t, t_true, atol=1e-3)
    # single sample API and NaN rows (dropped) give the same pose
    lm[[0, 5, 60]] = np.nan
    ypr = landmarks_to_pose(lm, (640, 480), focal=900)
    np.testing.assert_allclose(ypr, matrix_to_euler(R_true), atol=1e-4)


def test_unaligned_face_reads_the_offset_back():
    """Solving with the unaligned face returns R_true @ R_off: the stored alignment is applied as documented."""
    K = camera_matrix(450, 450)
    ypr = np.array([20.0, 10.0, -5.0])
    lm = project_points(mean_face(), euler_to_matrix(ypr), np.array([0.0, 0.0, 700.0]), K)
    R, _ = solve_pose(lm, mean_face(aligned=False), K)
    # R @ unaligned = R_true @ R_off @ unaligned  =>  R = R_true @ R_off
    expected = euler_to_matrix(ypr) @ mean_face_alignment()
    assert geodesic_distance(R, expected) < 1e-4


def test_degenerate_inputs_raise_clearly():
    K = camera_matrix(450, 450)
    X = mean_face()
    lm = project_points(X, np.eye(3), np.array([0.0, 0.0, 600.0]), K)
    with pytest.raises(PnPError, match="at least 4"):
        solve_pose(lm[:3], X[:3], K)
    only3 = lm.copy()
    only3[3:] = np.nan
    with pytest.raises(PnPError, match="at least 4"):
        landmarks_to_pose(only3, (450, 450))
    line = np.column_stack([np.linspace(0, 100, 68), np.linspace(0, 50, 68)])
    with pytest.raises(PnPError, match="collinear"):
        solve_pose(line, X, K)
    with pytest.raises(PnPError, match="collinear"):
        solve_pose(np.full((68, 2), 7.0), X, K)
    with pytest.raises(PnPError, match="expected"):
        solve_pose(lm, X[:10], K)
    with pytest.raises(KeyError, match="fan12"):
        subset_indices("no-such-subset")
    with pytest.raises(ValueError, match="0, 67"):
        subset_indices([3, 68])
    # batch with one bad sample: NaN angles for it only
    batch = np.stack([lm, np.full((68, 2), np.nan), lm])
    out = landmarks_to_pose(batch, (450, 450), errors="nan")
    assert np.isnan(out[1]).all() and np.isfinite(out[[0, 2]]).all()
    with pytest.raises(PnPError):
        landmarks_to_pose(batch, (450, 450))


def test_pose_std_grows_with_landmark_noise_and_fusion_weights_by_it():
    from facemtl.geometry.pnp import fuse_poses, pose_and_std_from_landmarks

    ypr = np.array([20.0, -10.0, 5.0])
    K = camera_matrix(400, 400)
    exact = project_points(mean_face(), euler_to_matrix(ypr), np.array([0.0, 0.0, 600.0]), K)
    rng = np.random.default_rng(0)
    pose_small, std_small = pose_and_std_from_landmarks(exact + rng.normal(0, 0.3, exact.shape), (400, 400))
    pose_big, std_big = pose_and_std_from_landmarks(exact + rng.normal(0, 3.0, exact.shape), (400, 400))
    assert np.abs(pose_small - ypr).max() < 1.0
    assert (std_big > 3 * std_small).all() and (std_small > 0).all()
    # Inverse-variance fusion: nearer the sure estimate; a missing one leaves the other.
    fused, std = fuse_poses(np.zeros(3), np.full(3, 1.0), np.full(3, 10.0), np.full(3, 3.0))
    np.testing.assert_allclose(fused, 1.0)
    np.testing.assert_allclose(std, np.sqrt(1 / (1 + 1 / 9)))
    fused, _ = fuse_poses(np.zeros(3), np.full(3, 1.0), np.full(3, np.nan), np.full(3, np.nan))
    np.testing.assert_allclose(fused, 0.0)
    nan = np.full(3, np.nan)
    assert np.isnan(pose_and_std_from_landmarks(np.full((68, 2), np.nan), (400, 400))[0]).all()
    assert np.isnan(fuse_poses(nan, nan, nan, nan)[0]).all()

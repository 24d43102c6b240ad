import numpy as np
import pytest

from facemtl.geometry.rotations import euler_to_matrix, rot_z
from facemtl.metrics.pose import geodesic_error, mean_signed_error, pose_mae, vector_errors, vector_mae

# Rows: [yaw, pitch, roll]. The third ground truth has |yaw| = 100 > 99: dropped by the AFLW2000 filter.
PRED = np.array([[10.0, 0, 0], [0, 5, -5], [50, 50, 50]])
GT = np.array([[0.0, 0, 0], [0, 0, 0], [100, 0, 0]])


def test_pose_mae_filters_large_ground_truth():
    r = pose_mae(PRED, GT)
    # Kept rows 0, 1: |d| = (10, 0, 0), (0, 5, 5) -> MAE yaw 5, pitch 2.5, roll 2.5, mean 10/3.
    assert (r["yaw"], r["pitch"], r["roll"]) == pytest.approx((5.0, 2.5, 2.5))
    assert r["mean"] == pytest.approx(10 / 3)
    assert (r["n"], r["n_filtered"]) == (2, 1)


def test_pose_mae_without_filter_and_boundary():
    r = pose_mae(PRED, GT, filter_deg=None)
    assert r["yaw"] == pytest.approx((10 + 0 + 50) / 3)
    assert (r["n"], r["n_filtered"]) == (3, 0)
    # |gt| == 99 is kept (only > 99 is dropped), the filter looks at gt, not at pred.
    r = pose_mae(np.array([[150.0, 0, 0]]), np.array([[0.0, -99, 0]]))
    assert (r["n"], r["yaw"]) == (1, 150.0)


def test_mean_signed_error_is_bias():
    r = mean_signed_error(PRED, GT)
    # Kept d = (10, 0, 0), (0, 5, -5) -> bias yaw 5, pitch 2.5, roll -2.5.
    assert (r["yaw"], r["pitch"], r["roll"]) == pytest.approx((5.0, 2.5, -2.5))
    assert r["mean"] == pytest.approx(5 / 3)


def test_wrapped_difference():
    pred, gt = np.array([[179.0, 0, 0]]), np.array([[-179.0, 0, 0]])
    assert pose_mae(pred, gt, filter_deg=None)["yaw"] == pytest.approx(358.0)
    assert pose_mae(pred, gt, filter_deg=None, wrapped=True)["yaw"] == pytest.approx(2.0)
    # 179 is 2 degrees short of -179 (= 181) going forward.
    assert mean_signed_error(pred, gt, filter_deg=None, wrapped=True)["yaw"] == pytest.approx(-2.0)


def test_all_filtered_gives_nan_and_bad_input_raises():
    r = pose_mae(np.zeros((2, 3)), np.full((2, 3), 120.0))
    assert np.isnan(r["mean"]) and (r["n"], r["n_filtered"]) == (0, 2)
    with pytest.raises(ValueError, match="empty"):
        pose_mae(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="shape"):
        pose_mae(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        pose_mae(np.array([[np.nan, 0, 0]]), np.zeros((1, 3)))


def test_geodesic_error():
    eye = np.eye(3)[None].repeat(3, axis=0)
    R = np.stack([euler_to_matrix([30.0, 0, 0]), rot_z(np.deg2rad(170.0)), rot_z(np.deg2rad(1e-6))])
    np.testing.assert_allclose(geodesic_error(R, eye), [30.0, 170.0, 1e-6], rtol=1e-6)
    assert geodesic_error(np.diag([-1.0, -1, 1])[None], np.eye(3)[None])[0] == pytest.approx(180.0)
    with pytest.raises(ValueError):
        geodesic_error(np.eye(3), np.eye(3))  # not batched


def test_vector_errors_by_hand():
    # Pure yaw (about the head's y axis) moves the x and z columns by 30 deg, y stays;
    # pure roll (about z) moves x and y by 10 deg, z stays.
    R = np.stack([euler_to_matrix([30.0, 0, 0]), euler_to_matrix([0.0, 0, 10])])
    I = np.eye(3)[None].repeat(2, axis=0)
    np.testing.assert_allclose(vector_errors(R, I), [[30, 0, 30], [10, 10, 0]], atol=1e-9)
    r = vector_mae(R, I)
    assert (r["x"], r["y"], r["z"], r["mean"]) == pytest.approx((20.0, 5.0, 15.0, 40 / 3))
    # Column lengths do not matter; opposite columns are 180 deg apart.
    np.testing.assert_allclose(vector_errors(2 * R, I), vector_errors(R, I), atol=1e-9)
    np.testing.assert_allclose(vector_errors(np.diag([-1.0, -1, 1])[None], np.eye(3)[None]), [[180, 180, 0]])


def test_pitch_slope_reads_a_compressed_model_and_filters():
    from facemtl.metrics import pitch_slope

    gt = np.c_[np.zeros(5), np.array([-30.0, -10, 0, 10, 30]), np.zeros(5)]
    assert pitch_slope(gt, gt) == pytest.approx(1.0)
    pred = gt.copy()
    pred[:, 1] = 0.5 * gt[:, 1] + 7  # half the true tilt, plus an offset: slope 0.5
    assert pitch_slope(pred, gt) == pytest.approx(0.5)
    far = np.r_[gt, [[120.0, 80.0, 0.0]]]  # |yaw| > 99 is dropped, as for the MAE
    assert pitch_slope(np.r_[pred, [[0.0, -500.0, 0.0]]], far) == pytest.approx(0.5)
    assert np.isnan(pitch_slope(gt[:1], gt[:1]))


def test_std_scale_recovers_the_factor_between_spread_and_error():
    from facemtl.metrics import std_scale

    rng = np.random.default_rng(0)
    spread = rng.uniform(10, 40, (20000, 3))
    true_sd = spread * np.array([0.1, 0.2, 0.05])  # the error's SD is a fixed fraction of the spread
    gt = rng.uniform(-60, 60, (20000, 3))
    pred = gt + rng.normal(size=(20000, 3)) * true_sd
    np.testing.assert_allclose(std_scale(pred, spread, gt), [0.1, 0.2, 0.05], rtol=0.03)
    gt[0] = [120, 0, 0]  # beyond +-99: left out, as by pose_mae
    spread[1] = np.nan  # an unusable row
    np.testing.assert_allclose(std_scale(pred, spread, gt), [0.1, 0.2, 0.05], rtol=0.03)
    with pytest.raises(ValueError, match="must all be"):
        std_scale(pred, spread[:, :2], gt)


def test_std_calibration_tells_a_calibrated_uncertainty_from_a_constant_one():
    from facemtl.metrics import std_calibration

    rng = np.random.default_rng(1)
    sd = rng.uniform(1, 10, (5000, 3))
    gt = rng.uniform(-60, 60, (5000, 3))
    pred = gt + rng.normal(size=(5000, 3)) * sd
    good = std_calibration(pred, sd, gt)
    assert abs(good["coverage"] - 0.683) < 0.02 and abs(good["z_rms"] - 1) < 0.03 and good["rank"] > 0.3
    flat = std_calibration(pred, np.full_like(sd, 40.0), gt)  # wide and the same for every face
    assert flat["coverage"] > 0.99 and flat["z_rms"] < 0.3 and np.isnan(flat["rank"])  # ranks nothing

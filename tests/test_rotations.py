from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
from scipy.spatial.transform import Rotation

from facemtl.geometry.rotations import (
    axis_angle_to_matrix,
    euler_to_matrix,
    geodesic_distance,
    line_of_sight,
    matrix_to_6d,
    matrix_to_axis_angle,
    matrix_to_euler,
    matrix_to_quaternion,
    mirror_rotation,
    nearest_rotation,
    pose_para_to_ypr,
    quaternion_to_matrix,
    rot_x,
    rot_y,
    rot_z,
    sixd_to_matrix,
    ypr_to_pose_para,
)


def random_ypr(n: int, seed: int = 0, max_yaw: float = 89.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack(
        [rng.uniform(-max_yaw, max_yaw, n), rng.uniform(-179, 179, n), rng.uniform(-179, 179, n)], axis=-1
    )


def random_rotations(n: int, seed: int = 0) -> np.ndarray:
    return Rotation.random(n, random_state=seed).as_matrix()


def test_elementary_rotations_are_right_handed():
    a = np.pi / 2
    np.testing.assert_allclose(rot_x(a) @ [0, 1, 0], [0, 0, 1], atol=1e-15)
    np.testing.assert_allclose(rot_y(a) @ [0, 0, 1], [1, 0, 0], atol=1e-15)
    np.testing.assert_allclose(rot_z(a) @ [1, 0, 0], [0, 1, 0], atol=1e-15)
    assert rot_z(np.zeros((2, 5))).shape == (2, 5, 3, 3)


def test_euler_semantics_hand_computed():
    nose = np.array([0.0, 0.0, -1.0])  # head frame: nose tip toward the camera
    # yaw 90: head +z (back of the head) goes to camera +x, the nose to the image's left.
    np.testing.assert_allclose(euler_to_matrix([90, 0, 0]) @ [0, 0, 1], [1, 0, 0], atol=1e-15)
    np.testing.assert_allclose(euler_to_matrix([90, 0, 0]) @ nose, [-1, 0, 0], atol=1e-15)
    # pitch 90: the nose points up (camera -y).
    np.testing.assert_allclose(euler_to_matrix([0, 90, 0]) @ nose, [0, -1, 0], atol=1e-15)
    # roll 90: head x (image right) goes to image down, i.e. clockwise on screen.
    np.testing.assert_allclose(euler_to_matrix([0, 0, 90]) @ [1, 0, 0], [0, 1, 0], atol=1e-15)
    # 30 deg yaw: nose at (-sin 30, 0, -cos 30).
    np.testing.assert_allclose(euler_to_matrix([30, 0, 0]) @ nose, [-0.5, 0, -np.sqrt(3) / 2], atol=1e-15)


def test_euler_equals_3ddfa_rotation_in_bfm_frame():
    # 3DDFA's Matlab RotationMatrix in the BFM frame (y up, z toward viewer): (Rz(r) Ry(y) Rx(p))^T.
    ypr = random_ypr(50)
    y, p, r = np.deg2rad(ypr).T
    R_bfm = np.swapaxes(rot_z(r) @ rot_y(y) @ rot_x(p), -1, -2)
    flip = np.diag([1.0, -1.0, -1.0])  # BFM frame <-> OpenCV frame
    np.testing.assert_allclose(flip @ R_bfm @ flip, euler_to_matrix(ypr), atol=1e-14)


def test_euler_round_trip_batched():
    ypr = random_ypr(2 * 500).reshape(2, 500, 3)
    R = euler_to_matrix(ypr)
    assert R.shape == (2, 500, 3, 3)
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-14)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-14)
    np.testing.assert_allclose(matrix_to_euler(R), ypr, atol=1e-10)
    # Any rotation comes back (as angles with |yaw| <= 90 that give the same matrix).
    Rs = random_rotations(500)
    ypr2 = matrix_to_euler(Rs)
    assert np.all(np.abs(ypr2[:, 0]) <= 90)
    np.testing.assert_allclose(euler_to_matrix(ypr2), Rs, atol=1e-12)


@pytest.mark.parametrize("yaw", [90.0, -90.0])
def test_euler_gimbal_lock(yaw):
    R = euler_to_matrix([yaw, 20.0, 35.0])
    ypr = matrix_to_euler(R)
    assert np.all(np.isfinite(ypr))
    assert ypr[0] == pytest.approx(yaw) and ypr[2] == 0.0
    np.testing.assert_allclose(euler_to_matrix(ypr), R, atol=1e-12)


def test_pose_para_conversion():
    pose_para = np.array([0.1, -0.2, 0.3, 5.0, 6.0, 7.0, 0.001])  # pitch, yaw, roll (rad), tx, ty, tz, s
    ypr = pose_para_to_ypr(pose_para)
    np.testing.assert_allclose(ypr, np.rad2deg([-0.2, 0.1, 0.3]))
    np.testing.assert_allclose(ypr_to_pose_para(ypr), pose_para[:3])
    assert pose_para_to_ypr(np.zeros((4, 7))).shape == (4, 3)


def test_6d_round_trip_and_gram_schmidt():
    R = random_rotations(200).reshape(10, 20, 3, 3)
    x = matrix_to_6d(R)
    assert x.shape == (10, 20, 6)
    np.testing.assert_allclose(x[..., :3], R[..., :, 0])  # columns, not rows
    np.testing.assert_allclose(sixd_to_matrix(x), R, atol=1e-14)
    # Arbitrary 6D vectors give proper rotations whose first column follows a1.
    a = np.random.default_rng(1).normal(size=(200, 6))
    M = sixd_to_matrix(a)
    np.testing.assert_allclose(M @ np.swapaxes(M, -1, -2), np.broadcast_to(np.eye(3), M.shape), atol=1e-14)
    np.testing.assert_allclose(np.linalg.det(M), 1.0, atol=1e-14)
    np.testing.assert_allclose(M[..., :, 0], a[:, :3] / np.linalg.norm(a[:, :3], axis=-1, keepdims=True))


def test_mirror_rotation_is_the_pose_of_the_mirrored_head():
    R = random_rotations(20, seed=3)
    points = np.random.default_rng(4).normal(size=(20, 3, 10))  # head-frame points (columns)
    flip = np.diag([-1.0, 1.0, 1.0])
    # The mirror image of the posed head is the mirrored head posed by mirror_rotation(R).
    np.testing.assert_allclose(flip @ (R @ points), mirror_rotation(R) @ (flip @ points), atol=1e-12)
    np.testing.assert_allclose(mirror_rotation(mirror_rotation(R)), R, atol=1e-12)
    ypr = random_ypr(20, seed=5)
    np.testing.assert_allclose(matrix_to_euler(mirror_rotation(euler_to_matrix(ypr))), ypr * [-1, 1, -1], atol=1e-9)


def test_nearest_rotation_removes_scale_and_noise():
    R = random_rotations(30, seed=6)
    noisy = 2.5 * R + np.random.default_rng(7).normal(scale=1e-3, size=R.shape)
    Q = nearest_rotation(noisy)
    np.testing.assert_allclose(Q @ np.swapaxes(Q, -1, -2), np.broadcast_to(np.eye(3), Q.shape), atol=1e-12)
    assert np.all(np.linalg.det(Q) > 0) and geodesic_distance(Q, R).max() < 0.1
    # The mean of a rotation and a nearby one goes back to the rotation halfway between them.
    half = nearest_rotation((R + R @ rot_z(np.deg2rad(10.0))) / 2)
    np.testing.assert_allclose(geodesic_distance(half, R), 5.0, atol=1e-6)


def test_quaternion_matches_scipy_and_round_trips():
    R = random_rotations(500)
    q = matrix_to_quaternion(R)
    assert np.all(q[:, 0] >= 0)
    q_scipy = Rotation.from_matrix(R).as_quat()[:, [3, 0, 1, 2]]  # scipy is (x, y, z, w)
    np.testing.assert_allclose(q, q_scipy * np.sign(q_scipy[:, :1]), atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(q), R, atol=1e-14)
    # Hand case: 60 deg about z is (cos 30, 0, 0, sin 30).
    np.testing.assert_allclose(matrix_to_quaternion(rot_z(np.pi / 3)), [np.sqrt(3) / 2, 0, 0, 0.5], atol=1e-15)
    # Near 180 deg (w ~ 0) stays accurate.
    R180 = axis_angle_to_matrix(np.array([0.0, np.pi - 1e-9, 0.0]))
    np.testing.assert_allclose(quaternion_to_matrix(matrix_to_quaternion(R180)), R180, atol=1e-14)


def test_axis_angle_matches_scipy_and_opencv_convention():
    R = random_rotations(500)
    v = matrix_to_axis_angle(R)
    np.testing.assert_allclose(v, Rotation.from_matrix(R).as_rotvec(), atol=1e-10)
    np.testing.assert_allclose(axis_angle_to_matrix(v), R, atol=1e-14)
    np.testing.assert_allclose(axis_angle_to_matrix([0, 0, np.pi / 2]), rot_z(np.pi / 2), atol=1e-15)
    tiny = np.array([1e-9, -2e-9, 3e-9])
    np.testing.assert_allclose(matrix_to_axis_angle(axis_angle_to_matrix(tiny)), tiny, rtol=1e-6, atol=1e-20)
    np.testing.assert_allclose(axis_angle_to_matrix(np.zeros(3)), np.eye(3))
    assert np.linalg.norm(matrix_to_axis_angle(rot_x(np.pi))) == pytest.approx(np.pi)
    with np.errstate(all="raise"):  # exactly 180 deg (w = 0) must not divide by zero
        np.testing.assert_allclose(np.abs(matrix_to_axis_angle(np.diag([1.0, -1.0, -1.0]))), [np.pi, 0, 0])


def test_geodesic_distance():
    angles = np.array([0.0, 1e-7, 0.3, 1.0, np.pi / 2, np.pi - 1e-6, np.pi])
    d = geodesic_distance(np.eye(3), rot_y(angles))
    np.testing.assert_allclose(d, np.rad2deg(angles), rtol=1e-9, atol=1e-12)
    R1, R2 = random_rotations(300, seed=1), random_rotations(300, seed=2)
    expected = np.rad2deg((Rotation.from_matrix(R1).inv() * Rotation.from_matrix(R2)).magnitude())
    np.testing.assert_allclose(geodesic_distance(R1, R2), expected, atol=1e-9)
    np.testing.assert_allclose(geodesic_distance(R2, R1), expected, atol=1e-9)


def affine_camera_rotation(points: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Rotation of the scaled-orthographic camera fitted to ``pixels`` ~ s R[:2] ``points`` + b
    (least squares, then the nearest orthonormal rows): the pose a weak-perspective fit sees."""
    X = np.c_[points, np.ones(len(points))]
    A = np.linalg.lstsq(X, pixels, rcond=None)[0][:3].T  # (2, 3)
    U, _, Vt = np.linalg.svd(A, full_matrices=False)
    rows = U @ Vt
    return np.r_[rows, np.cross(rows[0], rows[1])[None]]


def test_line_of_sight_turns_the_axis_onto_the_ray_without_roll():
    p = np.array([[100.0, -50.0, 1000.0], [0.0, 0.0, 3.0], [-400.0, 300.0, 500.0]])
    L = line_of_sight(p)
    np.testing.assert_allclose(L @ [0, 0, 1.0], p / np.linalg.norm(p, axis=1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(L[1], np.eye(3), atol=1e-15)
    np.testing.assert_allclose(L @ np.swapaxes(L, -1, -2), np.broadcast_to(np.eye(3), L.shape), atol=1e-12)
    np.testing.assert_allclose(matrix_to_axis_angle(L)[:, 2], 0.0, atol=1e-12)  # about an axis across the view
    with pytest.raises(ValueError, match="in front of the camera"):
        line_of_sight(np.array([0.0, 0.0, -1.0]))


def test_line_of_sight_gives_the_pose_a_crop_shows():
    """A face turned about a point 90 mm behind it, 1 m from a pinhole camera, moves off the axis:
    the pose a weak-perspective fit reads from its projection is the rotation seen along the ray
    through the face, not the camera-frame rotation (which is 4-5 deg short at 60 deg of yaw)."""
    rng = np.random.default_rng(3)
    face = rng.normal(0, [35.0, 40.0, 15.0], (60, 3)) + [0, 0, -90.0]  # head frame, origin behind the face
    f, t = 1000.0, np.array([0.0, 0.0, 1000.0])
    for ypr in ([60.0, 0.0, 0.0], [0.0, -25.0, 0.0], [45.0, 15.0, 10.0]):
        R = euler_to_matrix(np.array(ypr))
        cam = face @ R.T + t
        seen = affine_camera_rotation(face, f * cam[:, :2] / cam[:, 2:])
        assert geodesic_distance(seen, line_of_sight(cam.mean(0)).T @ R) < 0.6
        assert geodesic_distance(seen, R) > 2.0


# ---- the convention measured on the real AFLW2000-3D files ----------------------------------------


def load_aflw2000(folder: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, ypr degrees, pt3d_68 (68, 3) in pixels with z away from the camera) per dev image."""
    out = []
    for mat in sorted(folder.glob("*.mat")):
        m = sio.loadmat(str(mat))
        pts = m["pt3d_68"].T.astype(np.float64)
        pts[:, 2] *= -1  # 3DDFA's z points toward the viewer
        out.append((mat.stem, pose_para_to_ypr(m["Pose_Para"].ravel()), pts))
    assert len(out) >= 20, f"expected the AFLW2000 dev set in {folder}"
    return out


def procrustes_rotation(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotation R of the similarity dst ~ s R src + t (Kabsch / Umeyama, no reflection)."""
    a, b = src - src.mean(0), dst - dst.mean(0)
    U, _, Vt = np.linalg.svd(b.T @ a)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def test_aflw2000_yaw_sign_nose_left_of_eyes(aflw2000_dev):
    signs = []
    for name, ypr, pts in load_aflw2000(aflw2000_dev):
        if np.any(np.abs(ypr) >= 99):
            continue  # a few AFLW2000 labels are wrapped/garbage
        if abs(ypr[0]) < 2:
            continue  # near-frontal: the landmark noise decides the side
        # Nose offset along the outer-eye-corner axis (36 -> 45, the image right for an upright
        # face), so that roll does not move it sideways.
        eye_axis = pts[45, :2] - pts[36, :2]
        offset = (pts[30, :2] - 0.5 * (pts[36, :2] + pts[45, :2])) @ eye_axis / np.linalg.norm(eye_axis)
        assert (offset < 0) == (ypr[0] > 0), f"{name}: yaw {ypr[0]:.1f} but nose offset {offset:.1f}px"
        signs.append(np.sign(ypr[0]))
    assert signs.count(1) >= 3 and signs.count(-1) >= 3


def test_aflw2000_euler_matches_procrustes_fit_of_mean_face(aflw2000_dev, shared):
    mean = np.load(shared / "facemodels" / "ict-facekit" / "mean68_mm_xright_ydown_zaway.npy")
    data = load_aflw2000(aflw2000_dev)
    fitted = np.stack([procrustes_rotation(mean, pts) for _, _, pts in data])
    ypr = np.stack([y for _, y, _ in data])
    y, p, r = np.deg2rad(ypr).T
    ours = euler_to_matrix(ypr)
    ours_error = geodesic_distance(ours, fitted)
    assert np.median(ours_error) < 6.0  # the ICT and AFLW frontal directions differ by ~3.4 deg
    wrong = {
        "pitch flipped": euler_to_matrix(ypr * [1, -1, 1]),
        "yaw flipped": euler_to_matrix(ypr * [-1, 1, 1]),
        "roll flipped": euler_to_matrix(ypr * [1, 1, -1]),
        "reversed order": rot_z(r) @ rot_y(y) @ rot_x(-p),
        "yaw and pitch swapped": euler_to_matrix(ypr[:, [1, 0, 2]]),
    }
    for what, R in wrong.items():
        # Judge each alternative on the images where it disagrees with ours (order only matters
        # for large combined angles, which few dev images have).
        differs = geodesic_distance(R, ours) > 10
        assert differs.sum() >= 3, what
        assert np.median(ours_error[differs]) < 6.0, what
        assert np.median(geodesic_distance(R, fitted)[differs]) > 15.0, what


# ---- torch twins ----------------------------------------------------------------------------------


def test_torch_twins_equal_numpy():
    torch = pytest.importorskip("torch")
    from facemtl.geometry import rotations_torch as rt

    ypr = random_ypr(300).reshape(3, 100, 3)
    R = euler_to_matrix(ypr)
    np.testing.assert_allclose(rt.euler_to_matrix(torch.from_numpy(ypr)).numpy(), R, atol=1e-14)
    Rs = random_rotations(300)
    np.testing.assert_allclose(rt.matrix_to_euler(torch.from_numpy(Rs)).numpy(), matrix_to_euler(Rs), atol=1e-10)
    gimbal = euler_to_matrix([[90.0, 20.0, 35.0], [-90.0, 10.0, -5.0]])
    np.testing.assert_allclose(rt.matrix_to_euler(torch.from_numpy(gimbal)).numpy(), matrix_to_euler(gimbal))
    np.testing.assert_allclose(rt.matrix_to_6d(torch.from_numpy(R)).numpy(), matrix_to_6d(R))
    a = np.random.default_rng(3).normal(size=(4, 50, 6))
    np.testing.assert_allclose(rt.sixd_to_matrix(torch.from_numpy(a)).numpy(), sixd_to_matrix(a), atol=1e-14)
    R2 = random_rotations(300, seed=5)
    np.testing.assert_allclose(
        rt.geodesic_distance(torch.from_numpy(Rs), torch.from_numpy(R2)).numpy(), geodesic_distance(Rs, R2), atol=1e-9
    )
    f32 = rt.euler_to_matrix(torch.zeros(2, 3))
    assert f32.dtype == torch.float32 and f32.shape == (2, 3, 3)


def test_torch_geodesic_distance_gradients_are_finite():
    torch = pytest.importorskip("torch")
    from facemtl.geometry import rotations_torch as rt

    target = torch.from_numpy(euler_to_matrix([[10.0, -20.0, 5.0]] * 3)).float()
    # Predictions at the target (zero distance), 180 deg away and in between.
    offsets = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 180.0], [30.0, 10.0, -40.0]])
    x = rt.matrix_to_6d(target @ rt.euler_to_matrix(offsets)).requires_grad_(True)
    rt.geodesic_distance(rt.sixd_to_matrix(x), target).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad[2].abs().sum() > 0
    # Analytic gradients in float64 agree with finite differences away from 0 and 180 deg.
    pred = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    tgt = torch.from_numpy(random_rotations(4, seed=7))
    assert torch.autograd.gradcheck(lambda p: rt.geodesic_distance(rt.sixd_to_matrix(p), tgt), (pred,))

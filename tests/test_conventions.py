from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io as sio
from scipy.spatial.transform import Rotation

from facemtl.data.biwi import read_biwi_pose
from facemtl.geometry import conventions as cv
from facemtl.geometry.rotations import (euler_to_matrix, matrix_to_euler, pose_para_to_ypr, rot_x, rot_y, rot_z,
                                        sixd_to_matrix)
from facemtl.io import FileError

NOSE = np.array([0.0, 0.0, -1.0])  # facemtl head frame: the nose points at the camera


def random_rotations(n: int, seed: int = 0) -> np.ndarray:
    return Rotation.random(n, random_state=seed).as_matrix()


@pytest.mark.parametrize("name", sorted(cv.CONVENTIONS))
def test_round_trip_through_every_convention(name):
    R = random_rotations(60).reshape(3, 20, 3, 3)
    x = cv.convert(R, to=name)
    assert x.shape[:2] == (3, 20)
    np.testing.assert_allclose(cv.from_convention(x, name), R, atol=1e-12)
    from_fn, to_fn = cv.CONVENTIONS[name]
    np.testing.assert_allclose(to_fn(R), x)
    np.testing.assert_allclose(from_fn(x), R, atol=1e-12)


def test_unknown_convention_names_the_known_ones():
    with pytest.raises(ValueError, match="mediapipe"):
        cv.convert(np.eye(3), to="blender")
    np.testing.assert_allclose(cv.from_convention(np.zeros(3), "OpenCV"), np.eye(3))


# ---- OpenCV ----------------------------------------------------------------------------------------


def test_opencv_solvepnp_on_the_mean_face_recovers_R(shared):
    model = np.load(shared / "facemodels" / "ict-facekit" / "mean68_mm_xright_ydown_zaway.npy")
    K = np.array([[800.0, 0, 320], [0, 800, 240], [0, 0, 1]])
    for ypr in ([35.0, 10.0, -8.0], [-50.0, -20.0, 15.0]):
        R = euler_to_matrix(ypr)
        cam = model @ R.T + [0.0, 0.0, 700.0]
        pixels = cam[:, :2] / cam[:, 2:] * 800 + [320, 240]
        ok, rvec, _ = cv2.solvePnP(model, pixels, K, None, flags=cv2.SOLVEPNP_ITERATIVE)
        assert ok
        np.testing.assert_allclose(cv.from_opencv_rvec(rvec.ravel()), R, atol=1e-6)
        np.testing.assert_allclose(cv.to_opencv_rvec(R), rvec.ravel(), atol=1e-6)
        # Positive yaw puts the nose tip (landmark 30) left of the eye-corner midpoint in the image.
        if ypr[0] > 0:
            assert pixels[30, 0] < pixels[[36, 45], 0].mean()


# ---- BIWI ------------------------------------------------------------------------------------------


def hopenet_biwi_angles(M: np.ndarray) -> np.ndarray:
    """Yaw, pitch, roll (deg) as Hopenet / FSA-Net compute them from a BIWI file matrix ``M``."""
    R = M.T
    roll = -np.degrees(np.arctan2(R[1, 0], R[0, 0]))
    yaw = -np.degrees(np.arctan2(-R[2, 0], np.hypot(R[2, 1], R[2, 2])))
    pitch = np.degrees(np.arctan2(R[2, 1], R[2, 2]))
    return np.array([yaw, pitch, roll])


def write_biwi_pose(path: Path, M: np.ndarray, t: np.ndarray) -> None:
    rows = "".join(" ".join(f"{v:.9f}" for v in row) + " \n" for row in M)
    path.write_text(rows + "\n" + " ".join(f"{v:.6f}" for v in t) + " \n")


def test_read_biwi_pose_gives_the_papers_angles(tmp_path):
    for i, M in enumerate(random_rotations(20, seed=3)):
        path = tmp_path / f"frame_{i:05d}_pose.txt"
        write_biwi_pose(path, M, np.array([45.2, -13.0, 912.5]))
        R, t = read_biwi_pose(path)
        np.testing.assert_allclose(t, [45.2, -13.0, 912.5])
        np.testing.assert_allclose(R, M, atol=1e-8)
        np.testing.assert_allclose(matrix_to_euler(R), hopenet_biwi_angles(M), atol=1e-6)
    # A subject turned 40 deg to their right (nose to image left): the papers' yaw is +40.
    M = cv.to_biwi(euler_to_matrix([40.0, 0.0, 0.0]))
    assert hopenet_biwi_angles(M)[0] == pytest.approx(40.0)
    assert (M @ NOSE)[0] < 0


def test_read_biwi_pose_errors_name_the_file(tmp_path):
    short = tmp_path / "frame_00001_pose.txt"
    short.write_text("1 0 0\n0 1 0\n")
    with pytest.raises(FileError, match="frame_00001_pose.txt.*12 numbers"):
        read_biwi_pose(short)
    bad = tmp_path / "frame_00002_pose.txt"
    write_biwi_pose(bad, 2 * np.eye(3), np.zeros(3))
    with pytest.raises(FileError, match="not a rotation"):
        read_biwi_pose(bad)
    with pytest.raises(FileError, match="missing_pose.txt"):
        read_biwi_pose(tmp_path / "missing_pose.txt")


# ---- OpenFace --------------------------------------------------------------------------------------


def openface_euler2rotation(e: np.ndarray) -> np.ndarray:
    """OpenFace's Euler2RotationMatrix written out (s1 = sin e[0], c2 = cos e[1], ...)."""
    s1, s2, s3 = np.sin(e)
    c1, c2, c3 = np.cos(e)
    return np.array(
        [
            [c2 * c3, -c2 * s3, s2],
            [c1 * s3 + c3 * s1 * s2, c1 * c3 - s1 * s2 * s3, -c2 * s1],
            [s1 * s3 - c1 * c3 * s2, c3 * s1 + c1 * s2 * s3, c1 * c2],
        ]
    )


def test_openface_matches_its_euler2rotationmatrix_and_signs():
    rng = np.random.default_rng(4)
    for e in rng.uniform(-1.2, 1.2, size=(20, 3)):
        np.testing.assert_allclose(cv.from_openface(e), openface_euler2rotation(e), atol=1e-15)
    # Turning to one's own right by 30 deg: positive pose_Ry; looking up: negative pose_Rx.
    np.testing.assert_allclose(cv.to_openface(euler_to_matrix([30.0, 0, 0])), [0, np.pi / 6, 0], atol=1e-15)
    np.testing.assert_allclose(cv.to_openface(euler_to_matrix([0, 20.0, 0])), [-np.pi / 9, 0, 0], atol=1e-15)
    np.testing.assert_allclose(cv.to_openface(euler_to_matrix([0, 0, 10.0])), [0, 0, np.pi / 18], atol=1e-15)


# ---- MediaPipe -------------------------------------------------------------------------------------


def test_mediapipe_frames_and_scale():
    mp_nose = np.array([0.0, 0.0, 1.0])  # canonical face model: the nose tip has z ~ +7.5, y is up
    # A face turned to its own left (facemtl yaw -30): nose to the image right, MediaPipe +x.
    M = cv.to_mediapipe(euler_to_matrix([-30.0, 0, 0]))
    np.testing.assert_allclose(M @ mp_nose, [0.5, 0, np.sqrt(3) / 2], atol=1e-15)
    # Looking up (pitch +20): the nose tip rises, MediaPipe +y (y up).
    assert (cv.to_mediapipe(euler_to_matrix([0, 20.0, 0])) @ mp_nose)[1] > 0.3
    # Clockwise roll on screen is clockwise about MediaPipe's z toward the viewer: a negative angle.
    np.testing.assert_allclose(cv.to_mediapipe(euler_to_matrix([0, 0, 25.0])), rot_z(np.deg2rad(-25)), atol=1e-15)
    # The 4x4 with a uniform scale and a translation gives back the rotation.
    R = euler_to_matrix([20.0, -10.0, 5.0])
    T = np.eye(4)
    T[:3, :3] = 1.7 * cv.to_mediapipe(R)
    T[:3, 3] = [1.0, -2.0, -40.0]
    np.testing.assert_allclose(cv.from_mediapipe(T), R, atol=1e-14)


# ---- 6DRepNet --------------------------------------------------------------------------------------


def sixdrepnet_get_R(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """6DRepNet's get_R: Rz(roll) Ry(yaw) Rx(pitch), radians, right-handed."""
    return rot_z(roll) @ rot_y(yaw) @ rot_x(pitch)


def sixdrepnet_euler(R: np.ndarray) -> np.ndarray:
    """6DRepNet's compute_euler_angles_from_rotation_matrices (non-singular branch): x, y, z radians."""
    sy = np.hypot(R[0, 0], R[1, 0])
    return np.array([np.arctan2(R[2, 1], R[2, 2]), np.arctan2(-R[2, 0], sy), np.arctan2(R[1, 0], R[0, 0])])


def test_6drepnet_targets_from_real_pose_para(aflw2000_dev):
    mats = sorted(aflw2000_dev.glob("*.mat"))
    assert mats
    for mat in mats:
        pose_para = sio.loadmat(str(mat))["Pose_Para"].ravel()
        R6 = sixdrepnet_get_R(*pose_para[:3])  # what 6DRepNet's AFLW2000 loader builds
        R = euler_to_matrix(pose_para_to_ypr(pose_para))
        np.testing.assert_allclose(cv.from_6drepnet(R6), R, atol=1e-12)
        np.testing.assert_allclose(cv.to_6drepnet(R), R6, atol=1e-12)
        # Its Euler read-out is pitch, yaw, roll in our signs (for |yaw| < 90).
        ypr = matrix_to_euler(R)
        np.testing.assert_allclose(np.degrees(sixdrepnet_euler(R6)), ypr[[1, 0, 2]], atol=1e-9)
    # Its 6D head output goes through the same Gram-Schmidt as ours.
    out = np.concatenate([R6[:, 0] * 3.0, R6[:, 1] + 0.2 * R6[:, 0]])
    np.testing.assert_allclose(cv.from_6drepnet(sixd_to_matrix(out)), R, atol=1e-12)


# ---- img2pose --------------------------------------------------------------------------------------


def test_img2pose_matches_its_300wlp_label_conversion():
    rng = np.random.default_rng(5)
    for pitch, yaw, roll in rng.uniform(-1.2, 1.2, size=(20, 3)):
        # img2pose's convert_aflw: rotvec of the transpose of scipy's extrinsic xyz(pitch, -yaw, -roll).
        label = Rotation.from_matrix(Rotation.from_euler("xyz", [pitch, -yaw, -roll]).as_matrix().T).as_rotvec()
        R = euler_to_matrix(np.degrees([yaw, pitch, roll]))
        np.testing.assert_allclose(cv.to_img2pose(R), label, atol=1e-12)
        dof = np.concatenate([label, [0.1, -0.2, 5.0]])
        np.testing.assert_allclose(cv.from_img2pose(dof), R, atol=1e-12)
    # Turning to one's own right about the camera's y axis: a positive ry.
    np.testing.assert_allclose(cv.to_img2pose(euler_to_matrix([30.0, 0, 0])), [0, np.pi / 6, 0], atol=1e-15)

"""Face profiling: a real LFW photo turned to new yaws, with exact labels of the turned head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facemtl.geometry.rotations import euler_to_matrix, geodesic_distance
from facemtl.io import read_image
from facemtl.synth.facemodel import FaceModel
from facemtl.synth.fit import fit_landmarks
from facemtl.synth.labels import project
from facemtl.synth.profile import profile_lfw, profile_photo, sample_profile
from facemtl.synth.texture import lfw_pool, lfw_texture, photo_texture, remove_overlay
from test_rotations import affine_camera_rotation

ASSET = Path(__file__).resolve().parents[1] / "facemtl" / "assets" / "lfw_landmarks.npz"


@pytest.fixture(scope="module")
def photo(shared: Path, face_model: FaceModel):
    model = face_model
    d = np.load(ASSET)
    # A near-frontal photo of the texture pool.
    for rel in lfw_pool()[:20]:
        i = int(np.flatnonzero(d["path"] == rel)[0])
        image = remove_overlay(read_image(shared / "data" / "lfw" / rel))
        fit = fit_landmarks(d["landmarks"][i].astype(np.float64), (250, 250), model)
        if abs(fit.pose[0]) < 10 and fit.reprojection_error < 2.5:
            return model, image, fit, photo_texture(image, fit, model)
    pytest.skip("no near-frontal photo among the first 20 of the pool")


def test_zero_turn_reproduces_the_photo(photo):
    model, image, fit, tex = photo
    out, labels = profile_photo(image, fit, 0.0, model, tex)
    clean = image.astype(float)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.abs(out - clean).mean() < 6  # the face is redrawn from its texture, the rest is the photo
    np.testing.assert_allclose(labels.pose, fit.pose, atol=1e-9)
    proj = fit.project(model.landmarks_3d(fit.identity, fit.expression))
    np.testing.assert_allclose(labels.landmarks, proj, atol=1e-6)


def test_turned_head_labels(photo):
    model, image, fit, tex = photo
    before = fit.project(model.landmarks_3d(fit.identity, fit.expression))
    for delta in (-60.0, 45.0):
        out, labels = profile_photo(image, fit, delta, model, tex)
        np.testing.assert_allclose(labels.pose, fit.pose + [delta, 0, 0], atol=1e-9)
        np.testing.assert_allclose(euler_to_matrix(labels.pose), labels.rotation, atol=1e-12)
        np.testing.assert_allclose(project(labels.landmarks_3d, labels.camera), labels.landmarks, atol=1e-6)
        # Positive yaw puts the nose tip left of the outer eye corners' mid-point (AFLW2000 sign).
        def nose_offset(lm):
            return lm[30, 0] - (lm[36, 0] + lm[45, 0]) / 2

        assert np.sign(nose_offset(labels.landmarks) - nose_offset(before)) == -np.sign(delta)
        # The contour of the side turned away is hidden, the near side's eye is seen (negative
        # yaw turns the nose to the image right, hiding the contour points 12-16 there).
        far = slice(12, 17) if delta < 0 else slice(0, 5)
        near_eye = slice(36, 42) if delta < 0 else slice(42, 48)
        assert labels.visibility[far].sum() <= 2 and labels.visibility[near_eye].all()
        # The image border stays put; the head region changes.
        clean = image.astype(float)
        assert np.abs(out[[0, -1]] - clean[[0, -1]]).mean() < 3
        x1, y1, x2, y2 = labels.box.astype(int)
        assert np.abs(out[y1:y2, x1:x2] - clean[y1:y2, x1:x2]).mean() > 10


def test_pitch_turn_and_lfw_entry_point(photo, shared, tmp_path, face_model):
    model, image, fit, tex = photo
    before = fit.project(model.landmarks_3d(fit.identity, fit.expression))
    _, labels = profile_photo(image, fit, 0.0, model, tex, delta_pitch=15.0)
    np.testing.assert_allclose(labels.pose, fit.pose + [0, 15, 0], atol=1e-9)

    # Positive pitch lifts the nose tip (30) toward the eyes (smaller y gap).
    def gap(lm):
        return lm[30, 1] - lm[36:48, 1].mean()

    assert gap(labels.landmarks) < gap(before) - 2
    rel = lfw_pool()[0]
    out, labels = profile_lfw(shared / "data" / "lfw", rel, 30.0, cache_dir=tmp_path)
    d = np.load(ASSET)
    assert labels.identity == -1 - int(np.flatnonzero(d["path"] == rel)[0]) and out.shape == (250, 250, 3)
    assert labels.meta["source"] == rel
    # Its pose is the one seen along the ray through the turned face (what a weak-perspective fit of
    # the turned head's projection reads), not the camera-frame turn: closer to the affine-camera
    # rotation of the projected inner points (17-67) than the camera-frame one, which is off by the ray.
    fit = lfw_texture(shared / "data" / "lfw", rel, cache_dir=tmp_path).fit
    camera = euler_to_matrix(fit.pose + [30.0, 0, 0])
    cam = labels.landmarks_3d[17:]
    seen = affine_camera_rotation(face_model.landmarks_3d(fit.identity, fit.expression)[17:], cam[:, :2] / cam[:, 2:])
    assert geodesic_distance(labels.rotation, camera) > 1.0
    assert geodesic_distance(seen, labels.rotation) < 0.7 * geodesic_distance(seen, camera)


def test_sample_profile_is_deterministic_and_resized_consistently(shared, tmp_path):
    lfw = shared / "data" / "lfw"
    a_img, a = sample_profile(np.random.default_rng(3), lfw, size=128, cache_dir=tmp_path)
    b_img, b = sample_profile(np.random.default_rng(3), lfw, size=128, cache_dir=tmp_path)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert a_img.shape == (128, 128, 3) and -90 <= a.pose[0] <= 90
    # The resized camera still projects the 3D landmarks onto the resized 2D ones.
    np.testing.assert_allclose(project(a.landmarks_3d, a.camera), a.landmarks, atol=1e-6)
    assert a.box[2] - a.box[0] < 128

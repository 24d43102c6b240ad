"""Fitting the ICT model to 68 landmarks: synthetic recovery and real LFW pseudo-labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facemtl.geometry.rotations import euler_to_matrix, geodesic_distance
from facemtl.synth.facemodel import FaceModel
from facemtl.synth.fit import contour_candidates, fit_landmarks, slide_contour

ASSET = Path(__file__).resolve().parents[1] / "facemtl" / "assets" / "lfw_landmarks.npz"


@pytest.fixture(scope="module")
def model(face_model: FaceModel) -> FaceModel:
    return face_model


def _render_landmarks(model, ypr, identity, expression, index, f=900.0, t=(20.0, -10.0, 1100.0)):
    R = euler_to_matrix(np.asarray(ypr, dtype=float))
    xc = model.vertices(identity, expression, index=index) @ R.T + np.asarray(t)
    return R, f * xc[:, :2] / xc[:, 2:] + 124.5


def test_recovers_pose_of_a_random_face(model):
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(4):
        ypr = rng.uniform([-40, -20, -20], [40, 20, 20])
        identity = rng.standard_normal(40)
        expression = np.zeros(53)
        expression[model.expression_index("jawOpen")] = rng.uniform(0, 0.4)
        expression[model.expression_index("mouthSmile_R")] = rng.uniform(0, 0.5)
        R, q = _render_landmarks(model, ypr, identity, expression, model.landmark_index)
        q = q + rng.normal(0, 0.5, q.shape)
        fit = fit_landmarks(q, (250, 250), model, focal=900.0, slide=False)
        errors.append(geodesic_distance(R, fit.rotation))
        assert fit.reprojection_error < 1.5  # 0.5 px noise per axis ~ 0.63 px mean distance
        assert fit.errors.shape == (68,) and fit.image_size == (250, 250)
        assert 0 <= fit.expression.min() and fit.expression.max() <= 1
    # Landmarks alone leave some pose / face-depth ambiguity: a degree or two.
    assert np.mean(errors) < 2.0 and max(errors) < 3.5


def test_sliding_contour_follows_the_silhouette_at_yaw(model):
    cand = contour_candidates(model)
    rng = np.random.default_rng(3)
    for yaw in (-50, 50):
        identity = rng.standard_normal(40)
        R = euler_to_matrix(np.array([yaw, 8.0, -5.0]))
        # Contour points where a 2D annotator puts them: on the cheek's silhouette.
        index = slide_contour(model, R, identity, np.zeros(53), cand)
        assert (index != model.landmark_index).sum() >= 6
        _, q = _render_landmarks(model, [yaw, 8.0, -5.0], identity, None, index)
        slid = fit_landmarks(q, (250, 250), model, focal=900.0)
        fixed = fit_landmarks(q, (250, 250), model, focal=900.0, slide=False)
        assert geodesic_distance(R, slid.rotation) < 2.5 < geodesic_distance(R, fixed.rotation)
        assert slid.reprojection_error < 1.0 < fixed.reprojection_error


def test_fits_real_lfw_landmarks(model):
    d = np.load(ASSET)
    rng = np.random.default_rng(1)
    for i in rng.choice(len(d["path"]), 5, replace=False):
        fit = fit_landmarks(d["landmarks"][i].astype(np.float64), (250, 250), model)
        assert fit.reprojection_error < 3.0, d["path"][i]
        assert abs(fit.pose).max() < 60  # LFW faces are frontal-ish
        # The fitted face is in front of the camera, centred roughly where the photo's face is.
        centre = fit.project(fit.vertices(model, index=model.landmark_index)).mean(0)
        np.testing.assert_allclose(centre, np.mean(d["landmarks"][i], 0), atol=3)


def test_missing_landmarks_are_ignored_and_bad_input_rejected(model):
    d = np.load(ASSET)
    q = d["landmarks"][0].astype(np.float64)
    q[[3, 40, 60]] = np.nan
    fit = fit_landmarks(q, (250, 250), model, fit_expression=False)
    assert np.isnan(fit.errors[[3, 40, 60]]).all() and np.isfinite(np.delete(fit.errors, [3, 40, 60])).all()
    assert fit.reprojection_error < 3.0 and not fit.expression.any()
    with pytest.raises(ValueError, match="68, 2"):
        fit_landmarks(q[:10], (250, 250), model)

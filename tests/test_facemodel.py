"""The ICT face model in facemtl's head frame (needs ../shared/facemodels/ict-facekit)."""

from __future__ import annotations


import numpy as np
import pytest

from facemtl.geometry.rotations import euler_to_matrix
from facemtl.synth.facemodel import MATERIALS, FaceModel, frame_alignment, iris_discs, kabsch, swatch_box


@pytest.fixture(scope="module")
def model(face_model: FaceModel) -> FaceModel:
    return face_model


def test_zero_coefficients_give_the_converted_neutral_landmarks(ict_path, model):
    raw = np.load(ict_path)
    ict_cm = raw["neutral"][raw["landmarks68"]]
    # cm, y up, z toward the viewer -> mm, y down, z away, then the frame alignment.
    expected = (ict_cm * np.array([10.0, -10.0, -10.0])) @ model.alignment.T
    np.testing.assert_allclose(model.landmarks_3d(), expected, atol=1e-3)
    np.testing.assert_allclose(model.landmarks_3d(np.zeros(100), np.zeros(53)), expected, atol=1e-3)
    unaligned = FaceModel.load(ict_path, align=False)
    np.testing.assert_allclose(unaligned.landmarks_3d(), ict_cm * np.array([10.0, -10.0, -10.0]), atol=1e-3)


def test_head_frame_axes(model):
    lm = model.landmarks_3d()
    eyes = lm[36:48]
    assert lm[30, 2] < eyes[:, 2].min() - 20  # nose tip toward the camera, ~2-4 cm before the eyes
    assert lm[42:48, 0].mean() > 20 and lm[36:42, 0].mean() < -20  # iBUG right-eye points at image right
    assert lm[8, 1] > lm[30, 1] > eyes[:, 1].mean()  # y down: eyes, nose tip, chin
    # The eye corners are level and square to the camera within the few-degree frame offset.
    d = lm[45] - lm[36]
    assert abs(np.degrees(np.arctan2(d[1], d[0]))) < 2 and abs(np.degrees(np.arctan2(d[2], d[0]))) < 5


def test_jaw_open_moves_mouth_and_chin_down(model):
    w = np.zeros(53)
    w[model.expression_index("jawOpen")] = 1.0
    neutral, opened = model.landmarks_3d(), model.landmarks_3d(expression=w)
    assert opened[8, 1] - neutral[8, 1] > 10  # chin drops by more than a centimetre
    gap0, gap1 = neutral[66, 1] - neutral[62, 1], opened[66, 1] - opened[62, 1]
    assert gap1 - gap0 > 10  # inner lips part
    np.testing.assert_allclose(opened[36:48], neutral[36:48], atol=1.0)  # eyes stay
    with pytest.raises(KeyError, match="jawopen"):
        model.expression_index("jawopen")


def test_identity_modes_and_batched_evaluation(model):
    rng = np.random.default_rng(0)
    ident = rng.standard_normal((2, 40))
    expr = rng.uniform(0, 1, (2, 53))
    full = model.vertices(ident, expr)
    assert full.shape == (2, model.n_vertices, 3)
    lm = model.landmarks_3d(ident, expr)
    np.testing.assert_allclose(lm, full[:, model.landmark_index], atol=1e-3)
    # Identity changes the shape by millimetres to centimetres, not by metres.
    delta = np.abs(full[0] - model.vertices(expression=expr[0]))[: model.part_mask("face").sum()]
    assert 1 < delta.max() < 60


def test_render_mesh_is_consistent(model):
    rm = model.render_mesh()
    assert rm.triangles.min() == 0 and rm.triangles.max() == len(rm.vertex_index) - 1
    assert rm.uv.shape == (len(rm.vertex_index), 2) and rm.uv.min() >= 0 and rm.uv.max() <= 1
    assert len(rm.material) == len(rm.triangles) and set(np.unique(rm.material)) == set(range(len(MATERIALS)))
    # No eyelashes, lacrimal fluid, eye occlusion/blend meshes, gums or molars.
    dropped = model.part_mask("eyelashes", "lacrimal_fluid", "eye_occlusion", "eye_blend", "gums_tongue")
    assert not dropped[rm.vertex_index].any()
    skin = rm.material == MATERIALS.index("skin")
    tu = rm.uv[rm.triangles[skin], 0]
    span = tu.max(1) - tu.min(1)
    # The back seam is cut; only the fan round the crown (the unwrap's pole) stays stretched.
    crown = rm.uv[rm.triangles[skin], 1].max(1) < 0.01
    assert span[~crown].max() < 0.1 and np.percentile(span, 99) < 0.05 and crown.sum() < 200
    # Mirror symmetry of the skin unwrap: u -> 1 - u between the outer eye corners.
    pos = {v: i for i, v in enumerate(rm.vertex_index)}
    u36, u45 = rm.uv[pos[model.landmark_index[36]]], rm.uv[pos[model.landmark_index[45]]]
    assert abs(u36[0] + u45[0] - 1) < 1e-3 and abs(u36[1] - u45[1]) < 1e-3 and u45[0] > 0.5


def test_atlas_does_not_depend_on_the_frame_alignment(ict_path, model):
    a, b = model.render_mesh(), FaceModel.load(ict_path, align=False).render_mesh()
    np.testing.assert_array_equal(a.vertex_index, b.vertex_index)
    np.testing.assert_allclose(a.uv, b.uv, atol=1e-5)


def test_iris_discs_lie_on_the_corneas_of_the_sclera_swatch(model):
    discs = iris_discs(model)
    u0, v0, u1, v1 = swatch_box("sclera")
    assert ((discs[:, 0] - discs[:, 2] > u0) & (discs[:, 0] + discs[:, 2] < u1)).all()
    assert ((discs[:, 1] - discs[:, 2] > v0) & (discs[:, 1] + discs[:, 2] < v1)).all()
    assert abs(discs[:, 0].mean() - (u0 + u1) / 2) < 1e-3 and abs(discs[0, 1] - discs[1, 1]) < 1e-6
    # Every front-half sclera vertex mapped inside a disc is just before the iris (the cornea;
    # the front projection also maps the hidden back of the eyeball there).
    rm = model.render_mesh()
    sclera = np.zeros(len(rm.vertex_index), bool)
    sclera[rm.triangles[rm.material == MATERIALS.index("sclera")].ravel()] = True
    inside = np.zeros(len(rm.vertex_index), bool)
    for cu, cv, r in discs:
        inside |= np.hypot(rm.uv[:, 0] - cu, rm.uv[:, 1] - cv) < r
    z = model.neutral[rm.vertex_index, 2]
    iris_front = model.neutral[model.part_mask("iris_left", "iris_right"), 2].min()
    front = z < model.neutral[model.part_mask("eyeball_left", "eyeball_right"), 2].mean()
    assert (sclera & inside & front).sum() > 20 and (z[sclera & inside & front] < iris_front + 3).all()


def test_part_mask(model):
    assert model.part_mask("face").sum() == 9409
    assert model.part_mask("iris_left", "iris_right").sum() == 1600
    with pytest.raises(KeyError, match="hair"):
        model.part_mask("hair")


def test_frame_alignment_recovers_the_asset_rotation(tmp_path, model):
    R = euler_to_matrix(np.array([1.0, -3.4, 0.5]))
    src = FaceModel.load(align=False).landmarks_3d().astype(np.float64)
    np.testing.assert_allclose(kabsch(src, src @ R.T + 5.0), R, atol=1e-9)
    asset = tmp_path / "mean_face_68.npy"
    np.save(asset, src @ R.T)
    np.testing.assert_allclose(frame_alignment(src, asset), R, atol=1e-9)
    np.testing.assert_array_equal(frame_alignment(src, tmp_path / "missing.npy"), np.eye(3))

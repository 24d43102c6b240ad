"""The synthetic face engine: rasteriser, labels, writer, CLI (renders a handful of small faces)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat

from facemtl.contract import EXPRESSIONS
from facemtl.geometry.rotations import euler_to_matrix, matrix_to_euler, pose_para_to_ypr
from facemtl.synth import raster
from facemtl.synth.labels import expression_class, project

REPO = Path(__file__).resolve().parents[1]
HAVE_MODEL = (REPO.parent / "shared" / "facemodels" / "ict-facekit" / "ict_facekit_light.npz").is_file()
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason="ICT-FaceKit model not in ../shared")

NOSE_TIP, OUTER_EYE_R, OUTER_EYE_L = 30, 36, 45


def _config(**kw):
    from facemtl.synth.config import SynthConfig

    base = dict(size=96, p_occluder=0.0, p_low_res=0.0, p_blur=0.0, noise_sd=(0.0, 0.0), p_grey=0.0)
    base.update(kw)
    return SynthConfig(**base)


def _render(seed: int, **kw):
    from facemtl.synth.config import sample_rng
    from facemtl.synth.render import render_sample

    return render_sample(sample_rng(seed, 0), _config(**kw))


# ---------------------------------------------------------------------------------------
# Rasteriser


def test_rasterize_covers_pixel_centres_and_keeps_the_nearest():
    # Right triangle with legs 4 px along x and y from (1, 1) (pixel centres at integers);
    # counter-clockwise on a y-down screen means front facing. A second, farther triangle
    # covering everything must lose the depth test where both are drawn.
    near = np.array([[1, 1, 10], [1, 5, 10], [5, 1, 10]], np.float32)
    far = np.array([[-10, -10, 20], [-10, 30, 20], [30, -10, 20]], np.float32)
    verts = np.concatenate([far, near])
    tris = np.array([[0, 1, 2], [3, 4, 5]], np.int32)
    frags = raster.rasterize(verts, tris, 8, 8)
    inside = np.array([[x + y <= 6 and x >= 1 and y >= 1 for x in range(8)] for y in range(8)])
    assert np.array_equal(frags.tri_id == 1, inside)
    assert np.all(frags.depth[inside] == 10) and np.all(frags.depth[~inside] == 20)
    # Interpolating x, y back gives the pixel coordinates (barycentrics are exact).
    xy = raster.interpolate(frags, tris, verts[:, :2])
    ys, xs = np.nonzero(inside)
    assert np.allclose(xy[ys, xs], np.stack([xs, ys], 1), atol=1e-5)


def test_rasterize_culls_back_faces_and_interpolates_perspective_correct():
    # Clockwise on screen (y down) = back face: dropped with cull=True.
    verts = np.array([[0, 0, 1], [6, 0, 1], [0, 6, 1]], np.float32)
    assert raster.rasterize(verts, np.array([[0, 1, 2]]), 8, 8).mask.sum() == 0
    assert raster.rasterize(verts, np.array([[0, 1, 2]]), 8, 8, cull=False).mask.sum() == 28
    # A quad receding in depth: the screen midpoint between depths 1 and 3 is at depth
    # 1 / ((1/1 + 1/3) / 2) = 1.5 (perspective), not 2 (affine).
    verts = np.array([[0, 0, 1], [0, 4, 1], [4, 0, 3], [4, 4, 3]], np.float32)
    frags = raster.rasterize(verts, np.array([[0, 1, 2], [2, 1, 3]]), 5, 5)
    assert np.isclose(frags.depth[2, 2], 1.5, atol=1e-5)
    z = raster.interpolate(frags, np.array([[0, 1, 2], [2, 1, 3]]), verts[:, 2:3])
    assert np.isclose(z[2, 2, 0], 1.5, atol=1e-5)


# ---------------------------------------------------------------------------------------
# Labels


@needs_model
def test_expression_class_rule():
    from facemtl.synth.facemodel import FaceModel

    names = FaceModel.load().expr_names
    w = np.zeros(len(names))
    set_ = lambda **kv: [w.__setitem__(names.index(k), v) for k, v in kv.items()]  # noqa: E731
    assert EXPRESSIONS[expression_class(w, names)] == "neutral"
    set_(mouthSmile_L=0.8, mouthSmile_R=0.6)  # happy score 0.7
    assert EXPRESSIONS[expression_class(w, names)] == "happy"
    w[:] = 0
    # surprise = min(mean(brows) = 0.6, jawOpen = 0.5) = 0.5 beats fear (mouthStretch 0 -> 0).
    set_(browInnerUp_L=0.6, browInnerUp_R=0.6, browOuterUp_L=0.6, browOuterUp_R=0.6, jawOpen=0.5)
    assert EXPRESSIONS[expression_class(w, names)] == "surprise"
    set_(jawOpen=0.2)  # below the 0.3 threshold -> neutral
    assert EXPRESSIONS[expression_class(w, names)] == "neutral"
    w[:] = 0
    set_(browDown_L=0.7, browDown_R=0.7, mouthPress_L=0.5, mouthPress_R=0.5)  # angry via lip pressor
    assert EXPRESSIONS[expression_class(w, names)] == "angry"


def test_project_matches_the_pinhole_formula():
    K = np.array([[100.0, 0, 31.5], [0, 100.0, 31.5], [0, 0, 1]])
    assert np.allclose(project(np.array([[10.0, -20.0, 500.0]]), K), [[31.5 + 2.0, 31.5 - 4.0]])


@needs_model
def test_labels_are_consistent_with_the_camera_and_the_pose():
    image, lab = _render(3)
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    # pt3d_68 projected with the stored camera gives pt2d_68.
    assert np.allclose(project(lab.landmarks_3d, lab.camera), lab.landmarks, atol=1e-9)
    # Pose label: Euler -> matrix is the rotation; matrix -> Euler -> matrix is identical.
    R = euler_to_matrix(pose_para_to_ypr(lab.pose_para))
    assert np.allclose(R, lab.rotation, atol=1e-12)
    assert np.allclose(euler_to_matrix(matrix_to_euler(lab.rotation)), lab.rotation, atol=1e-12)
    # The 3D landmarks are the rotated, translated model landmarks.
    assert np.allclose(lab.landmarks_3d.mean(0), lab.rotation @ ((lab.landmarks_3d - lab.translation) @ lab.rotation).mean(0)
                       + lab.translation)
    assert lab.box[0] <= lab.landmarks[:, 0].min() and lab.box[3] >= lab.landmarks[:, 1].max()
    assert 0 <= lab.expr_class < len(EXPRESSIONS) and lab.expr_weights.shape == (53,)


@needs_model
def test_far_side_jaw_is_hidden_at_yaw_80():
    # Positive yaw turns the nose to the image left: the head's -x side (iBUG jaw 0-7, the
    # image-left jaw of a frontal face) goes behind the head, the +x side (9-16) faces the camera.
    for yaw, hidden, seen in ((80.0, slice(0, 5), slice(12, 17)), (-80.0, slice(12, 17), slice(0, 5))):
        _, lab = _render(5, yaw_range=(yaw, yaw), pitch_sd=0.0, roll_sd=0.0, center_jitter=0.0)
        assert lab.visibility[hidden].sum() == 0, lab.visibility
        assert lab.visibility[seen].sum() == 5, lab.visibility
        assert lab.visibility[NOSE_TIP] == 1


@needs_model
def test_positive_yaw_puts_the_nose_left_of_the_eyes(aflw2000_dev):
    for seed, (lo, hi) in enumerate(((20.0, 70.0), (-70.0, -20.0), (20.0, 70.0), (-70.0, -20.0))):
        _, lab = _render(10 + seed, yaw_range=(lo, hi))
        eyes_mid = lab.landmarks[[OUTER_EYE_R, OUTER_EYE_L], 0].mean()
        assert np.sign(lab.landmarks[NOSE_TIP, 0] - eyes_mid) == -np.sign(lab.pose[0])
    # The same relation holds on the real AFLW2000 faces (pt3d_68, Pose_Para).
    checked = 0
    for mat in sorted(aflw2000_dev.glob("*.mat")):
        m = loadmat(mat)
        yaw = np.rad2deg(m["Pose_Para"][0, 1])
        if 15 < abs(yaw) < 90:
            x = m["pt3d_68"][0]
            assert np.sign(x[NOSE_TIP] - x[[OUTER_EYE_R, OUTER_EYE_L]].mean()) == -np.sign(yaw), mat.name
            checked += 1
    assert checked >= 3


@needs_model
def test_render_is_deterministic_and_seeds_differ():
    a_img, a_lab = _render(7, p_occluder=1.0, p_low_res=1.0)
    b_img, b_lab = _render(7, p_occluder=1.0, p_low_res=1.0)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab.landmarks, b_lab.landmarks)
    c_img, _ = _render(8)
    assert not np.array_equal(a_img, c_img)


# ---------------------------------------------------------------------------------------
# CLI, writer, reader


def _cli(tmp: Path, name: str, *argv: str) -> Path:
    from facemtl.synth import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out = tmp / name
    assert cli.run(parser.parse_args(["--out", str(out), *argv])) == 0
    return out


@needs_model
def test_cli_same_seed_same_bytes_and_the_reader_reads_it(tmp_path):
    one = _cli(tmp_path, "one", "--n", "4", "--seed", "3", "--size", "64", "--workers", "1")
    two = _cli(tmp_path, "two", "--n", "4", "--seed", "3", "--size", "64", "--workers", "2")
    files = sorted(p.name for p in one.iterdir())
    assert files == sorted(p.name for p in two.iterdir())
    assert {"000000.jpg", "000000.mat", "000003.mat", "synth.json"} <= set(files)
    for name in files:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    m = loadmat(one / "000001.mat")
    assert m["Pose_Para"].shape == (1, 7) and m["pt2d_68"].shape == (2, 68) and m["pt3d_68"].shape == (3, 68)
    assert m["visible_68"].shape == (1, 68) and m["roi"].shape == (1, 4) and m["expr_weights"].shape == (1, 53)
    assert np.allclose(project(m["pt3d_68"].T, m["cam_K"]), m["pt2d_68"].T, atol=1e-9)

    mat3ddfa = pytest.importorskip("facemtl.data.mat3ddfa")
    samples = mat3ddfa.read_synth(one)
    assert len(samples) == 4
    s = samples[1]
    assert np.allclose(s.pose, pose_para_to_ypr(m["Pose_Para"][0]))
    assert np.allclose(s.landmarks, m["pt2d_68"].T) and np.array_equal(s.visibility, m["visible_68"][0])
    assert s.expression == int(m["expr_class"][0, 0]) and s.meta["identity"] == int(m["identity"][0, 0])


@needs_model
def test_scene_cli_with_two_worker_processes_finishes(tmp_path):
    """Forked workers (30 scenes: two jobs of 25 and 5) finish, in a fresh process as a user runs it.
    Before the fix a worker forked while OpenCV's thread pool ran could hang for good: a race, seen
    in 1 of 3 runs of this very command (and in --n 200), so this run can miss a regression."""
    import subprocess
    import sys

    out = tmp_path / "scenes"
    cmd = [sys.executable, "-m", "facemtl.cli", "synth", "--scene", "--n", "30", "--seed", "7", "--size", "320",
           "--workers", "2", "--out", str(out)]
    subprocess.run(cmd, check=True, timeout=60, capture_output=True)
    assert len(list(out.glob("*.jpg"))) == 30 and len(list(out.glob("*.mat"))) == 30


@needs_model
def test_npz_shards_match_the_per_image_labels(tmp_path):
    out = _cli(tmp_path, "npz", "--n", "3", "--seed", "3", "--size", "64", "--workers", "1", "--format", "npz",
               "--shard-size", "2")
    assert sorted(p.name for p in out.glob("*.npz")) == ["shard_00000.npz", "shard_00001.npz"]
    with np.load(out / "shard_00000.npz") as z:
        assert z["images"].shape == (2, 64, 64, 3) and z["images"].dtype == np.uint8
        from facemtl.synth.config import sample_rng, SynthConfig
        from facemtl.synth.render import render_sample

        image, lab = render_sample(sample_rng(3, 1), SynthConfig(size=64))
        assert np.array_equal(z["images"][1], image)
        assert np.allclose(z["landmarks"][1], lab.landmarks, atol=1e-4)
        assert np.allclose(z["pose"][1], lab.pose, atol=1e-4)


@needs_model
def test_scene_has_several_faces_with_labels(tmp_path):
    from facemtl.synth.config import sample_rng
    from facemtl.synth.render import render_scene

    image, faces = render_scene(sample_rng(0, 0), replace(_config(size=128), scene_faces=(3, 3)))
    assert image.shape == (128, 128, 3) and len(faces) == 3
    for lab in faces:
        assert np.allclose(project(lab.landmarks_3d, lab.camera), lab.landmarks, atol=1e-9)
    # Faces are placed in left-to-right slots.
    centres = [lab.landmarks[:, 0].mean() for lab in faces]
    assert centres == sorted(centres)


@needs_model
def test_photo_texture_path(shared):
    pytest.importorskip("facemtl.synth.texture")
    lfw = shared / "data" / "lfw"
    image, lab = _render(2, textures=str(lfw), p_photo_texture=1.0)
    assert image.shape == (96, 96, 3)
    assert lab.identity == -1  # a photo's appearance is nobody of the identity pool
    again, _ = _render(2, textures=str(lfw), p_photo_texture=1.0)
    assert np.array_equal(image, again)


@needs_model
def test_synth_dataset_items_are_the_seeded_samples():
    from facemtl.synth.config import sample_rng
    from facemtl.synth.render import SynthDataset, render_sample

    config = _config(size=64)
    data = SynthDataset(3, seed=4, config=config)
    sample = data[2]
    image, lab = render_sample(sample_rng(4, 2), config)
    assert len(data) == 3 and sample.source == "synth"
    assert np.array_equal(sample.image, image) and np.allclose(sample.pose, lab.pose)
    assert np.array_equal(sample.visibility, lab.visibility) and sample.expression == lab.expr_class
    with pytest.raises(IndexError):
        data[3]

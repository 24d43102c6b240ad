"""``facemtl synth --profile`` (profiled LFW photos) and ``--scene`` read back by the scene reader."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat

from facemtl.data.mat3ddfa import read_synth, read_synth_scenes
from facemtl.io import FileError

REPO = Path(__file__).resolve().parents[1]
HAVE_MODEL = (REPO.parent / "shared" / "facemodels" / "ict-facekit" / "ict_facekit_light.npz").is_file()
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason="ICT-FaceKit model not in ../shared")

NOSE_TIP, OUTER_EYE_R, OUTER_EYE_L = 30, 36, 45
SEED, SIZE = 5, 96


def _cli(out: Path, *argv: str) -> int:
    from facemtl.synth import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(["--out", str(out), "--workers", "1", *argv]))


@pytest.fixture(scope="module")
def lfw(shared: Path) -> Path:
    if not HAVE_MODEL:
        pytest.skip("ICT-FaceKit model not in ../shared")
    return shared / "data" / "lfw"


@pytest.fixture(scope="module")
def profiled(lfw: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("profile") / "a"
    assert _cli(out, "--profile", "--n", "3", "--seed", str(SEED), "--size", str(SIZE), "--lfw", str(lfw)) == 0
    return out


def test_profile_writes_what_read_synth_reads_with_the_profiling_labels(profiled, lfw):
    from facemtl.io import read_image
    from facemtl.synth.config import sample_rng
    from facemtl.synth.profile import sample_profile

    samples = read_synth(profiled)
    assert [Path(s.image_path).name for s in samples] == ["000000.jpg", "000001.jpg", "000002.jpg"]
    signs = []
    for i, s in enumerate(samples):
        image = read_image(s.image_path)
        assert image.shape == (SIZE, SIZE, 3)
        # Sample i is the profiling of sample_rng(seed, i): the label is the fitted pose plus the
        # turn, and the image is that rendering (up to JPEG).
        ref_image, ref = sample_profile(sample_rng(SEED, i), lfw, SIZE)
        np.testing.assert_allclose(s.pose, ref.pose, atol=1e-9)
        np.testing.assert_allclose(s.landmarks, ref.landmarks, atol=1e-9)
        assert np.abs(image.astype(float) - ref_image).mean() < 3
        assert s.meta["identity"] < 0 and s.visibility.shape == (68,)
        # Positive yaw puts the nose tip left of the outer eye corners' mid-point.
        yaw = s.pose[0]
        offset = s.landmarks[NOSE_TIP, 0] - (s.landmarks[OUTER_EYE_R, 0] + s.landmarks[OUTER_EYE_L, 0]) / 2
        if abs(yaw) > 10:
            assert np.sign(offset) == -np.sign(yaw), (i, yaw, offset)
            signs.append(np.sign(yaw))
    assert set(signs) == {-1.0, 1.0}  # both directions were checked

    # One face per image also reads as one-face scenes (for detector training).
    scenes = read_synth_scenes(profiled)
    assert [sc.boxes.shape for sc in scenes] == [(1, 4)] * 3
    np.testing.assert_allclose(scenes[1].meta["pose"][0], samples[1].pose)
    np.testing.assert_allclose(scenes[1].boxes[0], loadmat(profiled / "000001.mat")["face_box"][0])


def test_profile_same_seed_same_bytes(profiled, lfw, tmp_path):
    again = tmp_path / "b"
    assert _cli(again, "--profile", "--n", "3", "--seed", str(SEED), "--size", str(SIZE), "--lfw", str(lfw)) == 0
    names = sorted(p.name for p in profiled.iterdir())
    assert names == sorted(p.name for p in again.iterdir()) and len(names) == 7  # 3 x (.jpg, .mat) + synth.json
    for name in names:
        assert (profiled / name).read_bytes() == (again / name).read_bytes(), name


def test_profile_argument_errors(tmp_path, capsys):
    assert _cli(tmp_path / "x", "--profile", "--n", "1", "--lfw", str(tmp_path / "missing")) == 2
    assert "LFW folder not found" in capsys.readouterr().err
    assert _cli(tmp_path / "x", "--profile", "--n", "1", "--textures", str(tmp_path)) == 2
    assert _cli(tmp_path / "x", "--n", "1", "--lfw", str(tmp_path)) == 2
    assert not (tmp_path / "x").exists()


@needs_model
def test_scene_reader_boxes_hold_each_face_and_show_draws_them(tmp_path):
    from facemtl.data.show import render_tile
    from facemtl.synth.config import SynthConfig, sample_rng
    from facemtl.synth.render import render_scene

    out = tmp_path / "scenes"
    assert _cli(out, "--scene", "--n", "2", "--seed", "1", "--size", str(SIZE)) == 0
    with pytest.raises(FileError, match="synth-scenes"):
        read_synth(out)
    scenes = read_synth_scenes(out)
    assert len(scenes) == 2
    for k, sc in enumerate(scenes):
        n = int(loadmat(out / f"{k:06d}.mat")["n_faces"][0, 0])
        assert 2 <= n <= 6 and sc.boxes.shape == (n, 4) and sc.box is None and sc.pose is None
        lm = sc.meta["landmarks"]
        assert lm.shape == (n, 68, 2) and sc.meta["pose"].shape == (n, 3) and sc.meta["visibility"].shape == (n, 68)
        x1, y1, x2, y2 = (sc.boxes[:, None, j] for j in range(4))
        assert ((lm[..., 0] >= x1) & (lm[..., 0] <= x2) & (lm[..., 1] >= y1) & (lm[..., 1] <= y2)).all()
    # The labels are those of the rendered scene, face by face.
    _, faces = render_scene(sample_rng(1, 0), SynthConfig(size=SIZE))
    assert len(faces) == len(scenes[0].boxes)
    for j, lab in enumerate(faces):
        np.testing.assert_allclose(scenes[0].boxes[j], lab.face_box)
        np.testing.assert_allclose(scenes[0].meta["landmarks"][j], lab.landmarks)
        np.testing.assert_allclose(scenes[0].meta["pose"][j], lab.pose, atol=1e-9)

    # `facemtl data show`: the whole image (tile = image pixels), every box drawn in white.
    sc = scenes[0]
    plain, drawn = render_tile(sc, SIZE, labels=False), render_tile(sc, SIZE, labels=True)
    changed = np.argwhere((plain != drawn).any(2))[:, ::-1]  # (x, y)
    assert len(changed)
    x1, y1, x2, y2 = (sc.boxes[None, :, j] for j in range(4))
    x, y = changed[:, :1], changed[:, 1:]
    near_edge = (((np.abs(x - x1) <= 2) | (np.abs(x - x2) <= 2)) & (y >= y1 - 2) & (y <= y2 + 2)) | (
        ((np.abs(y - y1) <= 2) | (np.abs(y - y2) <= 2)) & (x >= x1 - 2) & (x <= x2 + 2))
    assert near_edge.any(1).all()  # nothing but box outlines is drawn
    # Each box corner inside the image is drawn in white: anti-aliased 1-pixel lines lighten
    # (never darken) the pixels next to it.
    diff = drawn.astype(int) - plain
    lighter = np.pad((diff.min(2) >= 0) & (diff.max(2) > 20), 1)
    for bx1, by1, bx2, by2 in np.round(sc.boxes).astype(int):
        for cx, cy in ((bx1, by1), (bx2, by1), (bx2, by2), (bx1, by2)):
            if 0 <= cx < SIZE and 0 <= cy < SIZE:
                assert lighter[cy:cy + 3, cx:cx + 3].any(), (cx, cy)


def test_profile_pitch_turn(lfw, tmp_path):
    from facemtl.synth.config import sample_rng
    from facemtl.synth.profile import sample_profile

    out = tmp_path / "pitch"
    assert _cli(out, "--profile", "--pitch-sd", "20", "--n", "2", "--seed", str(SEED), "--size", str(SIZE),
                "--lfw", str(lfw)) == 0
    plain = [sample_profile(sample_rng(SEED, i), lfw, SIZE)[1].pose for i in range(2)]
    for i, s in enumerate(read_synth(out)):
        turned = sample_profile(sample_rng(SEED, i), lfw, SIZE, pitch_sd=20.0)[1].pose
        np.testing.assert_allclose(s.pose, turned, atol=1e-9)  # the CLI passes the pitch turn on
        assert abs(turned[1] - plain[i][1]) > 0.5  # and it turns the head


def test_pitch_sd_needs_profile(tmp_path):
    assert _cli(tmp_path / "x", "--pitch-sd", "10", "--n", "1") == 2

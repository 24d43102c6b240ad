"""Photo textures: sampling a photo into the UV atlas through a fit, fills, overlay removal, cache."""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from facemtl.geometry.rotations import euler_to_matrix
from facemtl.synth import raster
from facemtl.synth.facemodel import SKIN_V, FaceModel
from facemtl.synth.fit import FitResult
from facemtl.synth.texture import (HAIR_COLOUR, PhotoTexture, blend_seams, hair_fill, lfw_pool, lfw_texture,
                                   mirror_fill, photo_texture, remove_overlay)


@pytest.fixture(scope="module")
def model(face_model: FaceModel) -> FaceModel:
    return face_model


def _known_fit(model: FaceModel, yaw: float) -> FitResult:
    return FitResult(
        rotation=euler_to_matrix(np.array([yaw, 5.0, 0.0])),
        translation=np.array([0.0, 0.0, 1000.0]),
        focal=900.0,
        center=np.array([127.5, 127.5]),
        identity=np.zeros(40),
        expression=np.zeros(53),
        landmark_vertex=model.landmark_index,
        errors=np.zeros(68),
        image_size=(256, 256),
    )


def _render(model: FaceModel, fit: FitResult, atlas: np.ndarray) -> np.ndarray:
    rm = model.render_mesh()
    head = fit.vertices(model, index=rm.vertex_index)
    verts = np.c_[fit.project(head), fit.to_camera(head)[:, 2]]
    frags = raster.rasterize(verts, rm.triangles, 256, 256)
    attrs = np.c_[rm.uv, np.ones(len(rm.uv)), np.zeros((len(rm.uv), 3)), np.ones((len(rm.uv), 3))]
    colour = raster.shade(frags, rm.triangles, attrs, atlas.astype(np.float32) / 255)
    return np.clip(colour * 255 + 0.5, 0, 255).astype(np.uint8)


def test_sampling_recovers_the_texture_a_photo_was_rendered_with(model):
    A = 128
    u, v = np.meshgrid((np.arange(A) + 0.5) / A, (np.arange(A) + 0.5) / A)
    atlas = np.stack([40 + 180 * u, 60 + 120 * v, np.full_like(u, 200)], -1)  # smooth BGR ramp
    fit = _known_fit(model, yaw=30.0)
    photo = _render(model, fit, atlas)
    tex = photo_texture(photo, fit, model, size=A)
    seen = tex.seen == 1
    skin = np.zeros((A, A), bool)
    skin[: int(SKIN_V * A)] = True
    assert seen[skin].mean() > 0.2  # the front of the head
    err = np.abs(tex.texture.astype(float) - atlas)[seen & skin].mean()
    assert err < 1.0, err  # (a 10 deg wrong yaw gives ~2.3)
    # Yawed 30 deg, the face's far side is unseen and mirrored from the near side; the back of
    # the head (u near 0 or 1) is never seen.
    assert (tex.seen == 2).sum() > 0.05 * seen.sum()
    assert not seen[:, : A // 10].any() and not seen[:, -A // 10 :].any()
    assert tex.texture.shape == (A, A, 3) and tex.texture.dtype == np.uint8


def test_hair_and_ears_lie_on_the_skull_and_beside_it(model):
    hair, ear = model.hair_and_ears()
    x = model.neutral
    assert not (hair & ear).any()
    back = np.argmax(np.where(x[:, 1] < 0, x[:, 2], -np.inf))  # the back of the head above the ears
    assert hair[np.argmin(x[:, 1])] and hair[back]  # and the crown
    assert not hair[model.landmark_index].any() and not ear[model.landmark_index].any()
    left, right = (ear & (x[:, 0] < 0)).sum(), (ear & (x[:, 0] > 0)).sum()
    assert left > 100 and abs(left - right) < 0.1 * left


def test_head_content_paints_unseen_hair_and_keeps_the_face(model):
    """A frontal photo of a head whose atlas is dark above the hairline: with ``head_content`` the
    never-seen back of the head is filled with that dark hair, without it with the skin; the
    face is sampled the same either way."""
    A = 128
    hair_v, _ = model.hair_and_ears()
    rm = model.render_mesh()
    # The hair share of each atlas texel.
    uv_frags = raster.rasterize(np.c_[rm.uv * A - 0.5, np.ones(len(rm.uv))], rm.triangles, A, A, cull=False)
    uv_hair = raster.interpolate(uv_frags, rm.triangles, hair_v[rm.vertex_index, None].astype(np.float32))[..., 0]
    atlas = np.where(uv_hair[..., None] > 0.5, 40.0, 200.0) * np.ones(3)
    fit = _known_fit(model, yaw=0.0)
    photo = _render(model, fit, atlas)
    plain, content = (photo_texture(photo, fit, model, size=A, head_content=c) for c in (False, True))
    back = (uv_hair > 0.99) & (content.seen == 0)
    back[:, A // 8: -A // 8] = False  # u near 0 or 1: the back of the head, never seen
    assert back.sum() > 50
    assert plain.texture[back].mean() > 120 and content.texture[back].mean() < 80
    face = (plain.seen == 1) & (uv_hair < 0.01)
    np.testing.assert_array_equal(plain.texture[face & (content.seen == 1)], content.texture[face & (content.seen == 1)])


def test_hair_fill_takes_seen_hair_or_a_default_and_adds_strands():
    rng = np.random.default_rng(0)
    tex = np.full((64, 64, 3), 200.0, np.float32)
    hair = np.zeros((64, 64), bool)
    hair[:32] = True
    seen = np.zeros_like(hair)
    seen[:8] = True
    tex[:8] = (30, 60, 90)  # the seen hair's colour
    out = hair_fill(tex, hair, seen, None, rng)
    deep = out[16:28]  # unseen hair deeper than the seam band
    np.testing.assert_allclose(deep.mean((0, 1)), (30, 60, 90), rtol=0.1)
    assert deep[..., 0].std() > 1  # strands
    np.testing.assert_array_equal(out[40:], tex[40:])  # not hair: untouched
    bare = hair_fill(tex, hair, np.zeros_like(hair), None, rng)[16:28]
    np.testing.assert_allclose(bare.mean((0, 1)), np.array(HAIR_COLOUR) * 255, rtol=0.1)


def test_blend_seams_joins_seen_mirrored_and_filled_skin_without_an_edge():
    """Seen skin in the middle (columns 20-55), lit from the left (brighter there), with fine
    detail; its mirror image lands right of it (columns 56-75 from 39-20). The hard fill copies
    the mirror texels with their own brightness: a step at the seam. The soft one keeps the seen
    skin, puts the mirrored detail on the local shading and has no step."""
    rng = np.random.default_rng(0)
    h, w = 64, 96
    x = np.arange(w)[None, :, None].astype(np.float32)
    tex = np.broadcast_to(200 - x, (h, w, 3)) + rng.normal(0, 8, (h, w, 3)).astype(np.float32)
    known = np.zeros((h, w), bool)
    known[:, 20:56] = True
    seen_only = np.where(known[..., None], tex, 0).astype(np.float32)
    hard, soft = mirror_fill(seen_only, known), blend_seams(seen_only, known, band=4)

    def step(img: np.ndarray) -> float:  # the jump in mean brightness across the seam
        col = img.mean(axis=(0, 2))
        return abs(col[56] - col[55])

    assert step(hard) > 15 and step(soft) < 3, (step(hard), step(soft))
    np.testing.assert_allclose(soft[:, 26:50], tex[:, 26:50], atol=1e-3)  # deeper than the band
    detail = soft[:, 60:72] - cv2.GaussianBlur(soft, (0, 0), 2)[:, 60:72]
    assert detail.std() > 3  # the mirrored side keeps the skin's detail
    assert np.isfinite(soft).all() and soft.shape == tex.shape


def test_remove_overlay_takes_out_thin_green_drawings():
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal([110, 140, 190], 6, (120, 120, 3)), 0, 255).astype(np.uint8)  # skin-ish BGR
    img[:, 90:] = (40, 160, 50)  # a large green area (a lawn) is kept
    drawn = img.copy()
    cv2.rectangle(drawn, (20, 20), (70, 80), (0, 128, 0), 2)
    for p in rng.integers(30, 65, (10, 2)):
        cv2.circle(drawn, (int(p[0]), int(p[1])), 1, (0, 128, 0), -1)
    clean = remove_overlay(drawn)
    px = clean[:, :85].astype(int)
    assert (px[..., 1] - np.maximum(px[..., 0], px[..., 2]) > 0).sum() == 0
    np.testing.assert_array_equal(clean[:, 100:], img[:, 100:])
    assert np.abs(clean[:, :85].astype(int) - img[:, :85]).mean() < 3


def test_lfw_texture_is_cached_and_round_trips(shared, model, tmp_path):
    lfw = shared / "data" / "lfw"
    rel = lfw_pool()[0]
    tex = lfw_texture(lfw, rel, size=64, cache_dir=tmp_path)
    files = list(tmp_path.rglob("*.npz"))
    assert len(files) == 1
    again = lfw_texture(lfw, rel, size=64, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.texture, tex.texture)
    np.testing.assert_allclose(again.pose, tex.pose, atol=1e-4)
    assert again.source == rel and tex.reprojection_error < 4
    loaded = PhotoTexture.load(files[0])
    np.testing.assert_allclose(loaded.fit.rotation, tex.fit.rotation, atol=1e-12)
    np.testing.assert_allclose(loaded.fit.project(np.zeros((1, 3))), tex.fit.project(np.zeros((1, 3))), atol=1e-9)
    assert 0 <= tex.as_float().min() and tex.as_float().max() <= 1

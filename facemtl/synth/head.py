"""Building the posed head's mesh parts: skin texture (procedural or photo), hair shell and
curtain, neck and torso."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from facemtl.geometry.rotations import euler_to_matrix
from facemtl.synth import raster
from facemtl.synth.anatomy import AXIS_Z, COLLAR_Y, NECK_JOINT, neck_weight, smoothstep
from facemtl.synth.assets import Assets, Lod
from facemtl.synth.config import SynthConfig
from facemtl.synth.person import Person, bgr


@dataclass
class Part:
    """A mesh in camera coordinates with its shading attributes (see :func:`raster.shade`)."""

    verts: np.ndarray  # (N, 3) camera frame, mm
    tris: np.ndarray  # (F, 3)
    attrs: np.ndarray  # (N, 6): u, v, texture weight, colour (BGR)
    ao: np.ndarray  # (N,)
    cull: bool = True
    two_sided: bool = False


@dataclass
class Head:
    """One placed face: its parts, texture and what its labels need."""

    person: Person
    expression: np.ndarray
    pose: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    label_points: np.ndarray  # (68 + B, 3) camera frame: landmarks then face-box vertices
    parts: list[Part] = field(default_factory=list)
    texture: Optional[np.ndarray] = None


def _skin_texture(assets: Assets, person: Person, rng: np.random.Generator) -> np.ndarray:
    """The procedural atlas texture (A, A, 3) BGR of a person (small per-sample variation)."""
    names = assets.layer_names
    C = np.zeros((len(names), 3))
    skin = person.skin * rng.uniform(0.96, 1.04, 3)
    row = {n: i for i, n in enumerate(names)}
    C[row["skin"]] = skin
    C[row["noise_lo"]] = skin * person.skin_var[0]
    C[row["noise_hi"]] = skin * person.skin_var[1]
    C[row["cheeks"]] = person.cheeks * bgr([0.06, -0.05, -0.04])
    C[row["lips"]] = person.lips - skin
    C[row["brows"]] = (person.brow_colour - skin) * person.brows[0]
    C[row["brows_wide"]] = (person.brow_colour - skin) * person.brows[0] * person.brows[1]
    dark = person.hair_colour * 0.8
    C[row["beard"]] = (dark - skin) * 0.8 * person.beard[0]
    C[row["moustache_goatee"]] = (dark - skin) * max(person.beard[0], person.beard[1])
    C[row["stubble"]] = (dark - skin) * 0.25 * person.beard[2]
    C[row["beard"]] += (dark - skin) * 0.25 * person.beard[2]
    if person.hair_style != "bald":
        cover = 0.55 if person.hair_style == "buzz" else 1.0
        for i, a in enumerate(person.hairline):
            C[row[f"hair{i}"]] = (person.hair_colour - skin) * a * cover
        C[row["hair_strands"]] = person.hair_colour * 0.2 * cover
    C[row["eye_shadow"]] = -skin * 0.15
    C[row["cloth"]] = person.cloth - skin
    C[row["cloth_v"]] = -(person.cloth - skin) * (person.neckline > 0)
    C[row["lashes"]] = (person.brow_colour * 0.5 - skin) * 0.9
    C[row["mouth"]] = bgr([0.30, 0.12, 0.12]) * rng.uniform(0.6, 1.2)
    C[row["sclera"]] = bgr([0.62, 0.57, 0.54]) * rng.uniform(0.8, 1.0)
    C[row["iris"]] = person.eye_colour
    C[row["pupil"]] = 0.02 - person.eye_colour
    C[row["teeth"]] = bgr([0.85, 0.82, 0.72]) * rng.uniform(0.8, 1.05)
    return raster.compose(assets.layers, assets.layer_boxes, C)


def _hair_parts(assets: Assets, lod: Lod, person: Person, v_head: np.ndarray, n_head: np.ndarray,
                rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]]:
    """Hair meshes in the head frame: [(verts, tris, attrs, two_sided)].

    The shell is the scalp pushed out along its normals by the style's thickness (thickest on
    the crown), fading to nothing at the person's hairline; outside it, it lies on the skin
    and loses the depth test to it.
    """
    out = []
    if person.hair_style in ("bald", "buzz"):
        return out
    idx = lod.shell_index
    amount = lod.hair[idx] @ np.array(person.hairline)
    crown = np.clip((assets.brow_y - v_head[idx, 1]) / 80.0, 0.2, 1.0)
    locks = 1 + lod.shell_noise @ np.array(person.hair_noise)
    offset = person.hair_thickness * smoothstep(amount / 0.6) * crown * np.clip(locks, 0.3, 2.0)
    verts = v_head[idx] + n_head[idx] * offset[:, None]
    attrs = np.zeros((len(idx), 6))
    attrs[:, :2] = lod.uv[idx]
    attrs[:, 2] = 1.0
    out.append((verts, lod.shell_tris, attrs, False))
    if person.hair_style == "long":
        out.append(_hair_curtain(assets, person, v_head, rng))
    return out


def _hair_curtain(assets: Assets, person: Person, v_head: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Long hair: a two-sided sheet hanging from the sides and back of the head."""
    cols, rows = 25, 7
    front = np.deg2rad(rng.uniform(62, 95))  # from the temples (framing the face) to behind the ears
    phi = np.linspace(front, 2 * np.pi - front, cols)
    top = assets.brow_y - 10.0
    # Head radius about the vertical axis from the top of the sheet to below the ears, per
    # 15 deg of azimuth, so the sheet hangs outside the ears.
    band = (v_head[:, 1] > top - 25) & (v_head[:, 1] < top + 90)
    x, z = v_head[band, 0], v_head[band, 2] - AXIS_Z
    bins = (np.mod(np.arctan2(x, -z), 2 * np.pi) / (2 * np.pi) * 24).astype(np.int64) % 24
    by_bin = np.zeros(24)
    np.maximum.at(by_bin, bins, np.hypot(x, z))
    by_bin[by_bin == 0] = by_bin.max()
    radius = by_bin[(phi / (2 * np.pi) * 24).astype(np.int64) % 24]
    # Uneven ends, shorter toward the face.
    ends = person.hair_length * (0.85 + 0.3 * rng.random(cols))
    ends *= 0.5 + 0.5 * smoothstep(np.minimum(phi - front, 2 * np.pi - front - phi) / np.deg2rad(40))
    t = np.linspace(0, 1, rows)[:, None]
    r = radius[None, :] + person.hair_thickness + 4 + t * ends[None, :] * 0.12
    y = top + t * ends[None, :]
    verts = np.stack([r * np.sin(phi), y, AXIS_Z - r * np.cos(phi)], -1).reshape(-1, 3)
    i = np.arange(rows - 1)[:, None] * cols + np.arange(cols - 1)[None, :]
    tris = np.concatenate([np.stack([i, i + cols, i + 1], -1).reshape(-1, 3),
                           np.stack([i + 1, i + cols, i + cols + 1], -1).reshape(-1, 3)])
    attrs = np.zeros((len(verts), 6))
    streak = np.tile(rng.uniform(0.8, 1.15, cols), rows)
    attrs[:, 3:6] = person.hair_colour[None] * streak[:, None]
    return verts, tris, attrs, True


def _torso(person: Person) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shoulders and chest in the head frame at rest (superelliptic rings), clothed."""
    half_w, half_d = person.torso
    # Rings from a collar around the neck (about 5 cm below the chin) over the top of the
    # model's own shoulder stub (|x| <= 124 mm at y = 120-160) to the shoulders and chest.
    ys = np.array([COLLAR_Y, 135, 150, 185, 230, 320, 700.0])
    aw = np.array([68, 118, 135, half_w - 10, half_w, half_w + 5, half_w + 10])
    ad = np.array([60, 72, 85, half_d, half_d, half_d, half_d])
    zc = np.array([12, 14, 16, 18, 18, 18, 18.0])
    cols = 36
    theta = np.linspace(0, 2 * np.pi, cols, endpoint=False)
    c, s = np.cos(theta), np.sin(theta)
    e = 2 / 2.6  # superellipse exponent 2.6: a rounded box
    ex, ez = np.sign(s) * np.abs(s) ** e, -np.sign(c) * np.abs(c) ** e  # theta = 0 is the front (-z)
    verts = np.stack([aw[:, None] * ex, np.repeat(ys[:, None], cols, 1), zc[:, None] + ad[:, None] * ez], -1).reshape(-1, 3)
    rows = len(ys)
    i = np.arange(rows - 1)[:, None] * cols + np.arange(cols)[None, :]
    j = np.arange(rows - 1)[:, None] * cols + (np.arange(cols)[None, :] + 1) % cols
    # Wound outward (front faces seen from outside, see raster's convention).
    tris = np.concatenate([np.stack([i, i + cols, j], -1).reshape(-1, 3), np.stack([j, i + cols, j + cols], -1).reshape(-1, 3)])
    attrs = np.zeros((len(verts), 6))
    attrs[:, 3:6] = person.cloth
    # Open neckline: skin on the upper chest, a V toward the front.
    front = np.abs(np.angle(np.exp(1j * theta))) < np.deg2rad(45)
    open_ = (person.neckline > 0) & front[None, :] & (ys[:, None] < COLLAR_Y + 60 * person.neckline)
    attrs[open_.ravel(), 3:6] = person.skin * 0.9
    return verts, tris.astype(np.int32), attrs


def build_head(assets: Assets, lod: Lod, person: Person, expression: np.ndarray, pose: np.ndarray,
               translation: np.ndarray, rng: np.random.Generator, torso: bool = True,
               texture: Optional[np.ndarray] = None) -> Head:
    """Place a person's head (pose, translation in the camera frame) with hair and torso."""
    m = assets.model
    R = euler_to_matrix(pose)
    shape = person.shape[: m.n_identity].astype(np.float32)
    expr = expression.astype(np.float32)
    coeffs = np.concatenate([shape, expr])
    v_head = raster.blend(lod.neutral.reshape(-1), coeffs, lod.basis).reshape(-1, 3).astype(np.float64)
    label_head = raster.blend(assets.label_neutral.reshape(-1), coeffs, assets.label_basis)
    label_head = label_head.reshape(-1, 3).astype(np.float64)
    # The torso follows part of the head rotation; the neck blends the two.
    torso_pose = pose * np.array([rng.uniform(0.0, 0.6), rng.uniform(0.0, 0.3), rng.uniform(0.0, 0.5)])
    torso_pose += rng.normal(0, [5, 3, 3])
    R_t = euler_to_matrix(torso_pose)
    joint = R @ NECK_JOINT + translation

    def to_camera(p: np.ndarray, w: np.ndarray) -> np.ndarray:
        head = p @ R.T + translation
        body = (p - NECK_JOINT) @ R_t.T + joint
        return head + w[:, None] * (body - head)

    head = Head(person=person, expression=expression, pose=pose, rotation=R, translation=translation,
                label_points=label_head @ R.T + translation)
    head.texture = texture if texture is not None else _skin_texture(assets, person, rng)
    attrs = np.zeros((len(v_head), 6))
    attrs[:, :2] = lod.uv
    attrs[:, 2] = 1.0
    head.parts.append(Part(to_camera(v_head, lod.neck), lod.tris, attrs, lod.ao))
    n_head = raster.vertex_normals(v_head, lod.tris).astype(np.float64)
    for verts, tris, a, two_sided in _hair_parts(assets, lod, person, v_head, n_head, rng):
        ao = np.full(len(verts), 0.8, np.float32)
        head.parts.append(Part(to_camera(verts, neck_weight(verts)), tris.astype(np.int32), a, ao,
                               cull=not two_sided, two_sided=two_sided))
    if torso:
        verts, tris, a = _torso(person)
        head.parts.append(Part(to_camera(verts, np.ones(len(verts), np.float32)), tris, a,
                               np.full(len(verts), 0.9, np.float32)))
    return head


def photo_texture(rng: np.random.Generator, config: SynthConfig, assets: Assets,
                   person: Person) -> tuple[Optional[np.ndarray], Person]:
    """A photo texture from ``config.textures`` with probability ``p_photo_texture``, with the
    person's hair painted over its scalp; ``(None, person)`` otherwise.

    The photo atlas has the photo's skin on most of the skull (its fill spreads the forehead).
    The person's hair bands are painted over it in the photo's own hair colour (the mean of the
    darkest quarter of the atlas just above the forehead, where the photo shows the hairline)
    when that is clearly darker than the cheeks, else in the person's own hair colour; the
    person then takes it for its hair sheet. The person's identity becomes -1: the face wears
    a photo's appearance, so it is nobody of the identity pool.
    """
    if not config.textures or rng.random() >= config.p_photo_texture:
        return None, person
    from facemtl.synth import texture as photo

    tex = photo.random_texture(rng, config.textures, assets.atlas)
    if tex is None:
        return None, person
    person = replace(person, identity=-1)
    above = tex[assets.hairline_texels]
    lum = above.sum(1)
    hair = above[lum <= np.quantile(lum, 0.25)].mean(0).astype(np.float64)
    cheeks = np.median(tex[assets.cheek_texels], axis=0)
    if hair.sum() < 0.7 * cheeks.sum():
        person = replace(person, hair_colour=hair)
    hair = person.hair_colour
    if person.hair_style == "bald":
        return tex, person
    cover = 0.55 if person.hair_style == "buzz" else 1.0
    alpha = np.zeros((len(assets.layer_names), 3))
    paint = np.zeros((len(assets.layer_names), 3))
    for i, a in enumerate(person.hairline):
        alpha[assets.layer_names.index(f"hair{i}")] = a * cover
        paint[assets.layer_names.index(f"hair{i}")] = hair * a * cover
    paint[assets.layer_names.index("hair_strands")] = hair * 0.2 * cover
    a = raster.compose(assets.layers, assets.layer_boxes, alpha)
    return tex * (1 - np.clip(a, 0, 1)) + raster.compose(assets.layers, assets.layer_boxes, paint), person

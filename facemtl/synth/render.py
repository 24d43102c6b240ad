"""Rendering synthetic faces with exact labels: :func:`render_sample` and :func:`render_scene`.

One sample is the ICT-FaceKit head (:mod:`facemtl.synth.facemodel`) of a sampled person
(identity shape + appearance, both fixed by an identity id), with a sampled expression, at a
sampled pose in front of a perspective camera, with

* a procedural skin texture in the model's UV atlas (tone, low-frequency variation, cheeks,
  lips, eyebrows, beard/stubble, eye shadow, hair-coloured scalp, eye and mouth swatches), or a
  photo texture (:mod:`facemtl.synth.texture`, when given);
* hair volume: a shell offset from the scalp (thickness by style; bald heads have none) and,
  for long hair, a curtain hanging from the back and sides of the head;
* a neck and torso with clothing; the neck is skinned between the head and torso rotations, so
  the head turns on the shoulders (the torso follows only part of the head rotation);
* ambient + directional light (Gouraud, with ambient occlusion precomputed on the neutral head);
* a background: a random crop of a real photo (LFW borders, the face itself excluded) or a
  procedural one; random occluders (shapes, bars, hand-like blobs) and black borders (crops
  past a photo's edge, as in AFLW2000) that also hide landmarks;
* photometric augmentation: colour jitter, the low-resolution (down/up-sampling) and blur
  augmentation of Hopenet §3.5, sensor noise, greyscale.

Speed: the mesh is decimated by vertex clustering for the image's pixel size (the landmark
vertices are always kept, and vertices that move apart under expressions are never merged),
the model basis is sliced to the kept vertices once, rasterisation and shading are numba
kernels (:mod:`facemtl.synth.raster`). Everything is deterministic given the generator passed
in: :func:`sample_rng` derives one generator per ``(seed, index)``.

Pixel convention: 0-based, pixel centres at integer coordinates (see :mod:`facemtl.synth.raster`).
Colours: BGR floats in [0, 1] internally, uint8 BGR images out.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from facemtl.geometry.rotations import euler_to_matrix
from facemtl.synth.assets import Assets, assets_for, lod_cell
from facemtl.synth.compose import augment, black_border, draw, draw_occluders, sample_background, soften_edges
from facemtl.synth.config import SynthConfig, sample_rng
from facemtl.synth.head import Head, build_head, photo_texture
from facemtl.synth.labels import FaceLabels, box_of, expression_class, landmark_visibility, project
from facemtl.synth.person import Person, sample_expression, sample_light, sample_person, sample_pose


def _labels(assets: Assets, head: Head, K: np.ndarray, depth: np.ndarray, ss: int, occluded: Optional[np.ndarray],
            size: int, tolerance_mm: float) -> FaceLabels:
    pts = head.label_points
    lm3d = pts[:68]
    lm2d = project(lm3d, K)
    vis = landmark_visibility((lm2d + 0.5) * ss - 0.5, lm3d[:, 2], depth, tolerance_mm)
    if occluded is not None:
        xy = np.clip(np.rint(lm2d).astype(np.int64), 0, size - 1)
        vis[occluded[xy[:, 1], xy[:, 0]]] = 0.0
    m = assets.model
    return FaceLabels(
        pose=head.pose.astype(np.float64),
        rotation=head.rotation,
        translation=head.translation.astype(np.float64),
        camera=K.copy(),
        landmarks=lm2d,
        landmarks_3d=lm3d,
        visibility=vis,
        box=box_of(lm2d),
        face_box=box_of(project(pts, K)),
        expr_weights=head.expression.astype(np.float64),
        expr_class=int(expression_class(head.expression, m.expr_names)),
        identity=head.person.identity,
    )


def _place(assets: Assets, person: Person, expression: np.ndarray, pose: np.ndarray,
           f: float, centre_px: np.ndarray, distance: float, K: np.ndarray) -> np.ndarray:
    """Translation putting the landmark centroid at pixel ``centre_px`` at depth ``distance``."""
    c = assets.landmarks(person.shape, expression).mean(0)
    ray = np.array([(centre_px[0] - K[0, 2]) / f, (centre_px[1] - K[1, 2]) / f, 1.0])
    return ray * distance - euler_to_matrix(pose) @ c


def render_sample(rng: np.random.Generator, config: SynthConfig = SynthConfig()) -> tuple[np.ndarray, FaceLabels]:
    """One face image (size, size, 3) uint8 BGR and its :class:`FaceLabels`.

    Deterministic for a given generator state (use :func:`sample_rng` for dataset indices).
    """
    size, ss = config.size, max(int(config.supersample), 1)
    assets = assets_for(config)
    m = assets.model
    person = sample_person(int(rng.integers(config.n_identities)), config.identity_modes)
    expression = sample_expression(rng, m.expr_names, config.p_neutral)
    pose = sample_pose(rng, config)
    # Framing: the frontal landmark box is face_frac of the image at the sampled distance.
    lm_width = np.ptp(assets.landmarks(person.shape, expression)[:, 0])
    frac = rng.uniform(*config.face_frac)
    distance = np.exp(rng.uniform(*np.log(config.distance_mm)))
    f = frac * size * distance / lm_width
    c = (size - 1) / 2
    K = np.array([[f, 0, c], [0, f, c], [0, 0, 1.0]])
    centre = c + rng.uniform(-1, 1, 2) * config.center_jitter * size
    t = _place(assets, person, expression, pose, f, centre, distance, K)
    lod = assets.lod(lod_cell(distance / (f * ss)))
    texture, person = photo_texture(rng, config, assets, person)
    head = build_head(assets, lod, person, expression, pose, t, rng, torso=rng.random() < config.p_torso,
                      texture=texture)
    light = sample_light(rng)
    colour, coverage, depth = draw([head], light, K, size, ss)
    background = sample_background(rng, assets, size, config.p_photo_background)
    image = colour + (1 - coverage[..., None]) * background
    if ss == 1:
        image = soften_edges(image, coverage)
    occluded = None
    lm2d = project(head.label_points[:68], K)
    if rng.random() < config.p_occluder:
        occluded = draw_occluders(rng, image, lm2d, np.ptp(lm2d[:, 0]) + np.ptp(lm2d[:, 1]), assets)
    if rng.random() < config.p_black_border:
        border = black_border(rng, image)
        occluded = border if occluded is None else occluded | border
    labels = _labels(assets, head, K, depth, ss, occluded, size, tolerance_mm=max(3.0, 2 * distance / f))
    return augment(rng, image, config), labels


def render_scene(rng: np.random.Generator, config: SynthConfig = SynthConfig()) -> tuple[np.ndarray, list[FaceLabels]]:
    """An image with several heads at different scales and depths (for detection).

    Heads are placed left to right in random slots, each with its own person, expression and
    pose, all in one z-buffer (nearer heads hide farther ones and their landmarks).
    """
    size, ss = config.size, max(int(config.supersample), 1)
    assets = assets_for(config)
    m = assets.model
    n = int(rng.integers(config.scene_faces[0], config.scene_faces[1] + 1))
    f = size / (2 * np.tan(np.deg2rad(rng.uniform(40, 70)) / 2))
    c = (size - 1) / 2
    K = np.array([[f, 0, c], [0, f, c], [0, 0, 1.0]])
    heads = []
    for k in range(n):
        person = sample_person(int(rng.integers(config.n_identities)), config.identity_modes)
        expression = sample_expression(rng, m.expr_names, config.p_neutral)
        pose = sample_pose(rng, config)
        width_px = size * rng.uniform(0.06, 0.35)
        lm_width = np.ptp(assets.landmarks(person.shape, expression)[:, 0])
        distance = f * lm_width / width_px
        centre = np.array([(k + rng.uniform(0.2, 0.8)) * size / n, rng.uniform(0.2, 0.8) * size])
        t = _place(assets, person, expression, pose, f, centre, distance, K)
        lod = assets.lod(lod_cell(distance / (f * ss)))
        texture, person = photo_texture(rng, config, assets, person)
        heads.append(build_head(assets, lod, person, expression, pose, t, rng, torso=rng.random() < config.p_torso,
                                texture=texture))
    light = sample_light(rng)
    colour, coverage, depth = draw(heads, light, K, size, ss)
    image = colour + (1 - coverage[..., None]) * sample_background(rng, assets, size, config.p_photo_background)
    if ss == 1:
        image = soften_edges(image, coverage)
    labels = [_labels(assets, h, K, depth, ss, None, size, tolerance_mm=max(3.0, 2 * h.translation[2] / f)) for h in heads]
    return augment(rng, image, replace(config, p_low_res=0.0)), labels


class SynthDataset:
    """Map-style dataset of ``length`` synthetic faces: item ``i`` is ``render_sample(sample_rng(seed, i))``.

    Returns :class:`facemtl.data.sample.Sample` objects (image in memory), so training code
    treats synthetic and real faces alike.
    """

    def __init__(self, length: int, seed: int = 0, config: SynthConfig = SynthConfig()):
        self.length, self.seed, self.config = int(length), int(seed), config

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        if not 0 <= i < self.length:
            raise IndexError(i)
        image, labels = render_sample(sample_rng(self.seed, i), self.config)
        return labels.to_sample(image)

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

from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from facemtl.contract import EXPRESSIONS
from facemtl.geometry.rotations import euler_to_matrix
from facemtl.synth import raster
from facemtl.synth.facemodel import MATERIALS, PARTS, SKIN_V, FaceModel, swatch_box
from facemtl.synth.labels import (
    EXPRESSION_SHAPES,
    FaceLabels,
    box_of,
    expression_class,
    landmark_visibility,
    project,
)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SHARED = REPO.parent / "shared"

# Identity appearance depends on the identity id alone (not on the dataset seed): the same id
# is the same person in every dataset.
IDENTITY_SALT = 0x1D3E7
# The background photo pool is a fixed pick of LFW images (same in every process).
BACKGROUND_SALT = 0xB6
BACKGROUND_POOL = 400
# LFW's 250x250 images have the face in this central box (x1, y1, x2, y2): crops avoid it.
LFW_FACE_BOX = (68, 55, 182, 195)

# Vertical axis of the head (x = 0, z = AXIS_Z mm, head frame) for the hair sheet and torso.
AXIS_Z = -20.0

SKIN, MOUTH, SCLERA, IRIS, TEETH = (MATERIALS.index(m) for m in ("skin", "mouth", "sclera", "iris", "teeth"))


@dataclass(frozen=True)
class SynthConfig:
    """What to sample. Angles in degrees, lengths in mm, probabilities in [0, 1].

    Pose: yaw uniform in ``yaw_range``; pitch and roll normal (``*_sd``) truncated at
    ``*_max``. Framing: ``face_frac`` is the width of the 68 landmarks' box of the *frontal*
    head over the image side (AFLW2000's crops: about 0.42), so profiles come out narrower as
    in real crops; the face centre is jittered by ``center_jitter`` x side; the camera stands
    ``distance_mm`` from the face (log-uniform), which with the framing sets the focal length.
    ``supersample``: render at this factor and area-downsample (anti-aliasing).
    ``textures``: folder of photos for photo textures (:mod:`facemtl.synth.texture`), used
    with probability ``p_photo_texture``; ``shared``: the ``../shared`` root (LFW backgrounds).
    """

    size: int = 128
    yaw_range: tuple[float, float] = (-99.0, 99.0)
    pitch_sd: float = 20.0
    pitch_max: float = 60.0
    roll_sd: float = 12.0
    roll_max: float = 45.0
    face_frac: tuple[float, float] = (0.32, 0.52)
    center_jitter: float = 0.06
    distance_mm: tuple[float, float] = (450.0, 3000.0)
    n_identities: int = 100_000
    identity_modes: int = 60
    p_neutral: float = 0.3
    p_torso: float = 0.97
    p_photo_background: float = 0.7
    p_occluder: float = 0.25
    p_black_border: float = 0.1
    p_low_res: float = 0.15
    low_res_factor: tuple[float, float] = (1.0, 15.0)
    p_blur: float = 0.15
    blur_sigma: tuple[float, float] = (0.4, 1.8)
    noise_sd: tuple[float, float] = (0.0, 0.02)
    p_grey: float = 0.05
    supersample: int = 1
    scene_faces: tuple[int, int] = (2, 6)
    shared: Optional[str] = None
    model_path: Optional[str] = None
    textures: Optional[str] = None
    p_photo_texture: float = 0.5


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of a dataset with ``seed`` (independent of workers)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


# ----------------------------------------------------------------------------------------
# Precomputed assets: decimated meshes, texture layers, hair and neck weights.


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


# Hairline: height above the brows (mm, up) as a function of the azimuth about the vertical
# head axis (0 = straight ahead; the ear is near 90): forehead, temples, sideburn, over the
# ear, nape.
_HAIRLINE_PHI = np.array([0, 30, 55, 70, 75, 82, 88, 95, 115, 140, 180], dtype=np.float64)
_HAIRLINE_UP = np.array([62, 60, 45, 22, -25, -25, 6, 8, -20, -60, -100], dtype=np.float64)
# Hair bands by the distance inside the hairline (mm): receding crown, normal, low hairline.
_HAIR_BANDS = ((25.0, 60.0), (5.0, 25.0), (-20.0, 5.0))


def _hair_bands(phi: np.ndarray, y: np.ndarray, brow_y: float) -> np.ndarray:
    """(..., 3) soft membership of head points (azimuth rad, height y mm) in the hair bands."""
    line_y = brow_y - np.interp(np.abs(np.rad2deg(phi)), _HAIRLINE_PHI, _HAIRLINE_UP)
    inside = line_y - y  # mm above the hairline
    steps = [_smoothstep((inside - lo) / 10.0) for lo, _ in _HAIR_BANDS]
    return np.stack([steps[0], steps[1] - steps[0], steps[2] - steps[1]], axis=-1)


# Neck skinning: points below the plane through (y, z) = JAW_A and NAPE_B (head frame, mm)
# follow the torso, fading in over NECK_FADE mm; the face and all 68 landmarks stay rigid.
_JAW_A = np.array([95.0, -100.0])
_NAPE_B = np.array([20.0, 90.0])
_NECK_FADE = 70.0
# Height (head frame y, mm) of the clothes' collar around the neck.
COLLAR_Y = 122.0
# The neck's joint with the torso (head frame, mm): the head turns about it.
NECK_JOINT = np.array([0.0, 140.0, 10.0])


def neck_weight(points: np.ndarray) -> np.ndarray:
    """Torso weight in [0, 1] of head-frame points (..., 3): 0 above the jaw-nape plane."""
    d = _NAPE_B - _JAW_A
    n = np.array([-d[1], d[0]]) / np.linalg.norm(d)
    if n[0] < 0:
        n = -n  # toward +y (down)
    s = (points[..., 1:3] - _JAW_A) @ n
    return _smoothstep(s / _NECK_FADE).astype(np.float32)


@dataclass
class Lod:
    """The render mesh decimated for one vertex-cluster size (``cell`` mm).

    ``index`` (R,) model vertex of each render vertex; ``uv`` (R, 2); ``tris`` (F, 3) int32;
    ``material`` (F,); ``neutral`` (R, 3) and ``basis`` (K + 53, 3R) (identity modes, then
    expressions) the model sliced to the kept vertices; ``neck`` (R,) torso weight; ``ao`` (R,) ambient
    occlusion of the neutral head; ``hair`` (R, 3) hair band membership; ``shell_index`` (S,)
    the vertices of any hair band and ``shell_tris`` (G, 3) the skin triangles among them
    (indices into ``shell_index``): the hair shell's mesh; ``shell_noise`` (S, 2) two smooth
    unit-variance fields on it (locks, uneven volume).
    """

    cell: float
    index: np.ndarray
    uv: np.ndarray
    tris: np.ndarray
    material: np.ndarray
    neutral: np.ndarray
    basis: np.ndarray
    neck: np.ndarray
    ao: np.ndarray
    hair: np.ndarray
    shell_index: np.ndarray
    shell_tris: np.ndarray
    shell_noise: np.ndarray


def _decimate(model: FaceModel, cell: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vertex clustering of the render mesh: (index, uv, tris, material) of the kept mesh.

    Vertices are clustered on a grid of ``cell`` mm (finer on the eyes and teeth, coarser on
    the head) jointly with their expression motion (the leading principal components of their
    53 blendshape offsets, on a 4 mm grid), their material and their UV side, so lips and
    eyelids that part under expressions stay apart. The cluster member nearest the cluster mean
    represents it; landmark vertices are never merged.
    """
    rm = model.render_mesh()
    vi = rm.vertex_index
    pos = model.neutral[vi].astype(np.float64)
    motion = model.expr_basis[:, vi, :].transpose(1, 0, 2).reshape(len(vi), -1).astype(np.float64)
    _, vecs = np.linalg.eigh(motion.T @ motion)
    motion = motion @ vecs[:, ::-1][:, :3]
    material = np.zeros(len(vi), np.int64)
    material[rm.triangles.ravel()] = np.repeat(rm.material, 3)
    head = (vi >= PARTS["head_neck"][0]) & (vi < PARTS["head_neck"][1])
    small = np.isin(material, (SCLERA, IRIS, TEETH))
    scale = cell * np.where(head, 1.5, np.where(small, 0.5, 1.0))
    q = np.concatenate(
        [np.floor(pos / scale[:, None]), np.floor(motion / 4.0), material[:, None],
         np.floor(rm.uv[:, :1] * 4), head[:, None], small[:, None]], axis=1).astype(np.int64)
    q -= q.min(0)
    key = np.zeros(len(vi), np.int64)
    for j, dim in enumerate(q.max(0) + 1):
        key = key * dim + q[:, j]
    landmark = np.isin(vi, model.landmark_index)
    key[landmark] = -1 - np.arange(landmark.sum())
    _, cluster = np.unique(key, return_inverse=True)
    cluster = cluster.ravel()
    count = np.bincount(cluster)
    mean = np.stack([np.bincount(cluster, pos[:, k]) / count for k in range(3)], 1)
    dist = np.linalg.norm(pos - mean[cluster], axis=1)
    order = np.lexsort((dist, cluster))
    first = np.r_[True, cluster[order][1:] != cluster[order][:-1]]
    rep = np.empty(len(count), np.int64)
    rep[cluster[order][first]] = order[first]
    tris = rep[cluster[rm.triangles]]
    keep = (tris[:, 0] != tris[:, 1]) & (tris[:, 1] != tris[:, 2]) & (tris[:, 0] != tris[:, 2])
    tris, tmat = tris[keep], rm.material[keep]
    s = np.sort(tris, 1)
    _, first_tri = np.unique((s[:, 0] * len(vi) + s[:, 1]) * len(vi) + s[:, 2], return_index=True)
    first_tri.sort()
    tris, tmat = tris[first_tri], tmat[first_tri]
    used = np.unique(tris)
    remap = np.full(len(vi), -1, np.int64)
    remap[used] = np.arange(len(used))
    return vi[used], rm.uv[used], remap[tris].astype(np.int32), tmat


def _basis(model: FaceModel, index: np.ndarray) -> np.ndarray:
    """Identity modes then expression shapes at the vertices ``index``, (K + 53, 3 len(index))."""
    rows = np.concatenate([model.id_basis[:, index], model.expr_basis[:, index]])
    return np.ascontiguousarray(rows.reshape(len(rows), -1), dtype=np.float32)


def _smooth_noise(points: np.ndarray, wavelengths_mm: tuple[float, ...], waves: int = 8) -> np.ndarray:
    """(N, len(wavelengths)) smooth random fields on 3D points: sums of plane waves (fixed seed)."""
    rng = np.random.default_rng(11)
    out = []
    for wl in wavelengths_mm:
        d = rng.standard_normal((waves, 3))
        d *= 2 * np.pi / wl / np.linalg.norm(d, axis=1, keepdims=True)
        f = np.sin(points @ d.T + rng.uniform(0, 2 * np.pi, waves)).sum(1)
        out.append(f / np.sqrt(waves / 2))
    return np.stack(out, 1).astype(np.float32)


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    r = np.sqrt(1 - z * z)
    a = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([r * np.cos(a), r * np.sin(a), z], 1)


def _ambient_occlusion(verts: np.ndarray, tris: np.ndarray, normals: np.ndarray, n_dirs: int = 48,
                       res: int = 96) -> np.ndarray:
    """Cosine-weighted fraction of directions from which each vertex is seen (orthographic
    z-buffer renders of the mesh from ``n_dirs`` directions)."""
    centre = verts.mean(0)
    radius = np.linalg.norm(verts - centre, axis=1).max()
    seen = np.zeros(len(verts))
    total = np.zeros(len(verts))
    px = res / (2.2 * radius)
    for d in _fibonacci_sphere(n_dirs):
        # Camera looking along d: orthonormal frame with z = d.
        a = np.array([1.0, 0, 0]) if abs(d[0]) < 0.9 else np.array([0, 1.0, 0])
        x = np.cross(a, d)
        x /= np.linalg.norm(x)
        y = np.cross(d, x)
        p = (verts - centre) @ np.stack([x, y, d], 1)
        screen = np.stack([p[:, 0] * px + res / 2, p[:, 1] * px + res / 2, p[:, 2] + 4 * radius], 1)
        frags = raster.rasterize(screen, tris, res, res, cull=True)
        vis = landmark_visibility(screen[:, :2], screen[:, 2], frags.depth, tolerance_mm=3.0)
        w = np.maximum(0.0, -(normals @ d))
        seen += w * vis
        total += w
    return (seen / np.maximum(total, 1e-9)).astype(np.float32)


class Assets:
    """Everything precomputed once per process: model, LODs, texture layers, photo pools."""

    def __init__(self, model_path: Optional[str], shared: Optional[str], atlas: int = 256):
        self.model = FaceModel.load(model_path)
        self.shared = Path(shared) if shared else DEFAULT_SHARED
        self.atlas = atlas
        m = self.model
        rm = m.render_mesh()
        # Render vertex of each landmark (its UV locates the landmark in the atlas).
        first = {}
        for r, v in enumerate(rm.vertex_index):
            first.setdefault(int(v), r)
        self.landmark_uv = rm.uv[[first[int(v)] for v in m.landmark_index]].astype(np.float64)
        # The skin unwrap is v = a * y + b (head-frame y, mm) and u = 0.5 + azimuth / 2 pi.
        skin = np.zeros(len(rm.vertex_index), bool)
        skin[rm.triangles[rm.material == SKIN].ravel()] = True
        y = m.neutral[rm.vertex_index[skin], 1].astype(np.float64)
        self.v_per_mm, self.v0 = np.polyfit(y, rm.uv[skin, 1].astype(np.float64), 1)
        self.brow_y = float(m.neutral[m.landmark_index[17:27], 1].mean())
        self._lods: dict[float, Lod] = {}
        self.layers, self.layer_names = self._texture_layers()
        self.layer_boxes = raster.layer_boxes(self.layers)
        # Texels just above the forehead (front of the two lower hair bands).
        band = self.layers[self.layer_names.index("hair1")] + self.layers[self.layer_names.index("hair2")]
        front = np.abs((np.arange(atlas) + 0.5) / atlas - 0.5) < 0.1
        self.hairline_texels = (band > 0.5) & front[None, :]
        self.cheek_texels = self.layers[self.layer_names.index("cheeks")] > 0.3
        # Label vertices: the 68 landmarks, then every 4th of the narrow face area (its box is
        # the face box).
        face = np.arange(*PARTS["face_narrow"])
        self.label_index = np.concatenate([m.landmark_index, face[::4]])
        self.label_neutral = m.neutral[self.label_index]
        self.label_basis = _basis(m, self.label_index)
        self.landmark_basis = np.ascontiguousarray(self.label_basis[:, : 68 * 3])
        self._backgrounds: Optional[list[Path]] = None
        self._background_cache: dict[int, np.ndarray] = {}

    def landmarks(self, shape: np.ndarray, expression: np.ndarray) -> np.ndarray:
        """(68, 3) head-frame landmarks of a face (as ``FaceModel.landmarks_3d``, faster)."""
        coeffs = np.concatenate([shape[: self.model.n_identity], expression])
        return raster.blend(self.label_neutral[:68].reshape(-1), coeffs, self.landmark_basis).reshape(68, 3).astype(np.float64)

    # -- meshes
    def lod(self, cell: float) -> Lod:
        """The decimated mesh for clusters of ``cell`` mm (computed once per cell size)."""
        if cell not in self._lods:
            m = self.model
            index, uv, tris, material = _decimate(m, cell)
            neutral = m.neutral[index]
            normals = raster.vertex_normals(neutral, tris)
            ao = _ambient_occlusion(neutral.astype(np.float64), tris, normals)
            # Mouth interior and teeth are enclosed in the neutral head: fixed occlusion instead.
            vm = np.full(len(index), SKIN)
            vm[tris.ravel()] = np.repeat(material, 3)
            ao[vm == MOUTH] = 0.35
            ao[vm == TEETH] = 0.8
            ao[(vm == SCLERA) | (vm == IRIS)] = np.maximum(ao[(vm == SCLERA) | (vm == IRIS)], 0.6)
            phi = (uv[:, 0].astype(np.float64) - 0.5) * 2 * np.pi
            hair = _hair_bands(phi, neutral[:, 1].astype(np.float64), self.brow_y)
            hair[vm != SKIN] = 0
            in_hair = hair.sum(1) > 0.02
            shell = tris[(material == SKIN) & in_hair[tris].all(1)]
            shell_index = np.unique(shell)
            remap = np.full(len(index), -1)
            remap[shell_index] = np.arange(len(shell_index))
            self._lods[cell] = Lod(
                cell=cell, index=index, uv=uv, tris=tris, material=material, neutral=neutral,
                basis=_basis(m, index),
                neck=neck_weight(neutral.astype(np.float64)), ao=ao, hair=hair.astype(np.float32),
                shell_index=shell_index, shell_tris=remap[shell].astype(np.int32),
                shell_noise=_smooth_noise(neutral[shell_index].astype(np.float64), (25.0, 60.0)))
        return self._lods[cell]

    # -- procedural texture
    def _texture_layers(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """Atlas layers (L, A, A) float32 mixed per sample by a colour matrix (L, 3)."""
        A = self.atlas
        rng = np.random.default_rng(7)  # fixed: the layers are part of the model
        u = (np.arange(A) + 0.5) / A
        U, V = np.meshgrid(u, u)
        skin = (V < SKIN_V).astype(np.float32)
        lm = self.landmark_uv * A - 0.5  # texel coordinates (x, y) of the landmarks
        px_per_mm = self.v_per_mm * A  # vertical texels per mm

        def noise(sigma_x: float, sigma_y: float) -> np.ndarray:
            n = cv2.GaussianBlur(rng.standard_normal((A, A)).astype(np.float32), (0, 0), sigma_x, sigmaY=sigma_y)
            return n / (n.std() + 1e-9)

        def blob(centre: np.ndarray, sigma_mm: float) -> np.ndarray:
            s = sigma_mm * px_per_mm
            return np.exp(-(((U * A - 0.5) - centre[0]) ** 2 + ((V * A - 0.5) - centre[1]) ** 2) / (2 * s * s))

        def poly(points: np.ndarray, blur_mm: float) -> np.ndarray:
            canvas = np.zeros((A, A), np.uint8)
            cv2.fillPoly(canvas, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
            return cv2.GaussianBlur(canvas.astype(np.float32) / 255, (0, 0), max(blur_mm * px_per_mm, 0.3))

        def line(points: np.ndarray, width_mm: float, blur_mm: float) -> np.ndarray:
            canvas = np.zeros((A, A), np.uint8)
            t = max(int(round(width_mm * px_per_mm)), 1)
            cv2.polylines(canvas, [np.round(points * 16).astype(np.int32)], False, 255, t, cv2.LINE_AA, shift=4)
            return cv2.GaussianBlur(canvas.astype(np.float32) / 255, (0, 0), max(blur_mm * px_per_mm, 0.3))

        mm = 1.0 / px_per_mm  # mm per texel (vertical)
        layers: dict[str, np.ndarray] = {"skin": skin}
        layers["noise_lo"] = noise(10, 10) * skin
        layers["noise_hi"] = noise(1.2, 1.2) * skin
        cheeks = blob((lm[2] + lm[31] + lm[48]) / 3, 11) + blob((lm[14] + lm[35] + lm[54]) / 3, 11)
        layers["cheeks"] = (cheeks + 0.6 * blob(lm[30], 5)) * skin
        lips = poly(lm[48:60], 0.8)
        layers["lips"] = lips
        brows = [lm[17:22], lm[22:27]]
        layers["brows"] = np.maximum(line(brows[0], 5, 0.8), line(brows[1], 5, 0.8))
        # Wider brows: the band below the brow line grows downward at the inner end.
        layers["brows_wide"] = np.clip(np.maximum(line(brows[0] + [0, 2 / mm], 9, 1.2),
                                                  line(brows[1] + [0, 2 / mm], 9, 1.2)) - layers["brows"], 0, 1)
        down = np.array([0, 14 / mm])
        up = np.array([0, -1]) * (lm[2, 1] - lm[31, 1])
        beard = np.concatenate([[lm[2] + up * 0.9], lm[3:14] + down, [lm[14] + up * 0.9], lm[35:30:-1] + [0, 2 / mm]])
        beard_mask = np.clip(poly(beard, 3.0) - 1.5 * lips, 0, 1)
        layers["beard"] = beard_mask
        moustache = np.concatenate([lm[48:55] + [0, -1 / mm], lm[35:30:-1] + [0, 1 / mm]])
        goatee = np.concatenate([lm[54:60] + [0, 2 / mm], [lm[48] + [0, 2 / mm]],
                                 [lm[7] + [0, 6 / mm], lm[8] + [0, 8 / mm], lm[9] + [0, 6 / mm]]])
        layers["moustache_goatee"] = np.clip(np.maximum(poly(moustache, 2.0), poly(goatee, 2.5)) - 1.5 * lips, 0, 1)
        layers["stubble"] = np.clip(noise(0.6, 0.6), 0, None) * np.maximum(beard_mask, layers["moustache_goatee"])
        phi = (U - 0.5) * 2 * np.pi
        y = (V - self.v0) / self.v_per_mm
        bands = _hair_bands(phi, y, self.brow_y) * skin[..., None]
        for i in range(3):
            layers[f"hair{i}"] = bands[..., i]
        layers["hair_strands"] = noise(0.6, 6.0) * bands.sum(-1)
        # Clothes on the model's own shoulder stub, continuing the torso's (collar at
        # y = COLLAR_Y); a V-neck opening at the front.
        cloth = _smoothstep((y - COLLAR_Y) / 6.0) * skin
        layers["cloth"] = cloth
        v_depth = 60.0 * (1 - np.abs(np.rad2deg(phi)) / 45.0)
        layers["cloth_v"] = cloth * _smoothstep((COLLAR_Y + v_depth - y) / 6.0)
        # Lash lines: the upper lids (36-39, 42-45) dark and thick, the lower ones faint.
        lashes = np.maximum(line(lm[36:40], 1.6, 0.4), line(lm[42:46], 1.6, 0.4))
        lower = np.maximum(line(lm[[39, 40, 41, 36]], 0.8, 0.4), line(lm[[45, 46, 47, 42]], 0.8, 0.4))
        layers["lashes"] = np.clip(lashes + 0.4 * lower, 0, 1)
        layers["eye_shadow"] = (blob(lm[36:42].mean(0) - [0, 3 / mm], 7) + blob(lm[42:48].mean(0) - [0, 3 / mm], 7)) * skin
        # Swatches (see facemodel.ATLAS): mouth, sclera, iris with pupil, teeth.
        for name in ("mouth", "sclera", "teeth"):
            u0, v0, u1, v1 = swatch_box(name)
            layers[name] = ((U >= u0) & (U < u1) & (V >= v0) & (V < v1)).astype(np.float32)
        u0, v0, u1, v1 = swatch_box("iris")
        r = np.hypot(U - (u0 + u1) / 2, V - (v0 + v1) / 2) / (0.45 * (u1 - u0))
        inside = (U >= u0) & (U < u1) & (V >= v0) & (V < v1)
        layers["iris"] = (inside * (1 - 0.6 * _smoothstep((r - 0.8) / 0.2)) * (1 + 0.25 * noise(0.7, 0.7))).astype(np.float32)
        layers["pupil"] = (inside * (1 - _smoothstep((r - 0.33) / 0.06))).astype(np.float32)
        names = tuple(layers)
        # Tiny values far from a feature would only cost time: cut them to exact zeros.
        stack = np.stack([np.where(np.abs(layers[n]) < 1e-3, 0, layers[n]).astype(np.float32) for n in names])
        return stack, names

    # -- backgrounds
    def background_photo(self, k: int) -> Optional[np.ndarray]:
        """Photo ``k`` of the fixed LFW background pool (BGR uint8), or None without LFW."""
        if self._backgrounds is None:
            lfw = self.shared / "data" / "lfw"
            files = sorted(lfw.rglob("*.jpg")) if lfw.is_dir() else []
            pick = np.random.default_rng(BACKGROUND_SALT).permutation(len(files))[:BACKGROUND_POOL]
            self._backgrounds = [files[i] for i in sorted(pick)]
        if not self._backgrounds:
            return None
        k %= len(self._backgrounds)
        if k not in self._background_cache:
            from facemtl.io import read_image
            from facemtl.synth.texture import remove_overlay

            # The shared LFW copy has a green face box and landmark dots burned in.
            self._background_cache[k] = remove_overlay(read_image(self._backgrounds[k]))
        return self._background_cache[k]


@lru_cache(maxsize=2)
def get_assets(model_path: Optional[str] = None, shared: Optional[str] = None, atlas: int = 256) -> Assets:
    """The process-wide :class:`Assets` (built on first use, a second or two)."""
    return Assets(model_path, shared, atlas)


def assets_for(config: SynthConfig) -> Assets:
    """The assets a configuration renders with (the atlas grows with the image size)."""
    atlas = 256 if config.size * max(config.supersample, 1) <= 192 else 512
    return get_assets(config.model_path, config.shared, atlas)


# ----------------------------------------------------------------------------------------
# Sampling people, expressions, poses.

# Colour anchors, RGB in [0, 1] (converted to BGR where used).
_SKIN_TONES = np.array([[0.95, 0.82, 0.74], [0.89, 0.71, 0.60], [0.80, 0.60, 0.47], [0.68, 0.49, 0.36],
                        [0.52, 0.36, 0.25], [0.36, 0.24, 0.17], [0.25, 0.17, 0.13]])
_HAIR_COLOURS = np.array([[0.05, 0.04, 0.04], [0.14, 0.09, 0.06], [0.28, 0.18, 0.11], [0.45, 0.32, 0.20],
                          [0.70, 0.57, 0.38], [0.48, 0.20, 0.10], [0.55, 0.54, 0.52], [0.82, 0.81, 0.78]])
_HAIR_P = np.array([0.30, 0.25, 0.15, 0.10, 0.07, 0.03, 0.06, 0.04])
_EYE_COLOURS = np.array([[0.25, 0.14, 0.07], [0.40, 0.25, 0.12], [0.30, 0.40, 0.55], [0.30, 0.42, 0.30],
                         [0.45, 0.50, 0.55]])
_HAIR_STYLES = ("bald", "buzz", "short", "volume", "long")
# Clothes: black, white, greys, navy, blue, light-blue shirt, dark green, beige, brown, red.
_CLOTH_COLOURS = np.array([[0.05, 0.05, 0.06], [0.85, 0.85, 0.84], [0.45, 0.45, 0.46], [0.22, 0.22, 0.24],
                           [0.10, 0.12, 0.28], [0.25, 0.38, 0.65], [0.62, 0.72, 0.86], [0.12, 0.25, 0.15],
                           [0.68, 0.60, 0.45], [0.35, 0.22, 0.14], [0.60, 0.10, 0.12]])
_CLOTH_P = np.array([0.2, 0.12, 0.08, 0.1, 0.1, 0.08, 0.08, 0.04, 0.06, 0.06, 0.08])


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float64)[..., ::-1].copy()


@dataclass
class Person:
    """Identity-level shape and appearance (all fixed by the identity id)."""

    identity: int
    shape: np.ndarray
    skin: np.ndarray
    skin_var: np.ndarray
    cheeks: float
    lips: np.ndarray
    brow_colour: np.ndarray
    brows: tuple[float, float]
    beard: tuple[float, float, float]  # full beard, moustache/goatee, stubble
    hair_style: str
    hair_colour: np.ndarray
    hairline: tuple[float, float, float]
    hair_thickness: float
    hair_length: float
    hair_noise: tuple[float, float]  # amplitudes of fine locks and coarse volume changes
    eye_colour: np.ndarray
    cloth: np.ndarray
    cloth2: np.ndarray
    neckline: float
    torso: tuple[float, float]  # shoulder half-width, chest half-depth (mm)


def sample_person(identity: int, n_modes: int = 60) -> Person:
    """The person with this identity id (shape ~ N(0, 1) on the first ``n_modes`` modes)."""
    rng = np.random.default_rng(np.random.SeedSequence([IDENTITY_SALT, int(identity)]))
    shape = np.zeros(100)
    shape[:n_modes] = rng.standard_normal(n_modes)
    masculine = rng.random() < 0.5
    t = rng.beta(1.6, 2.2) * (len(_SKIN_TONES) - 1)
    i = min(int(t), len(_SKIN_TONES) - 2)
    skin = (1 - (t - i)) * _SKIN_TONES[i] + (t - i) * _SKIN_TONES[i + 1]
    skin = np.clip(skin * rng.uniform(0.92, 1.06) + rng.normal(0, 0.015, 3), 0.05, 1)
    hair = _HAIR_COLOURS[rng.choice(len(_HAIR_COLOURS), p=_HAIR_P)] * rng.uniform(0.8, 1.2)
    if t > 3.5:  # darker skin: mostly dark hair
        hair = _HAIR_COLOURS[rng.choice(3)] * rng.uniform(0.8, 1.2)
    style_p = [0.10, 0.15, 0.45, 0.22, 0.08] if masculine else [0.01, 0.02, 0.17, 0.30, 0.50]
    style = _HAIR_STYLES[rng.choice(5, p=style_p)]
    beard = (0.0, 0.0, 0.0)
    if masculine:
        kind = rng.choice(4, p=[0.55, 0.15, 0.1, 0.2])
        beard = [(0, 0, 0), (rng.uniform(0.5, 1), 0, 0.5), (0, rng.uniform(0.5, 1), 0.3),
                 (0, 0, rng.uniform(0.4, 1))][kind]
    lips = skin * np.array([0.85, 0.62, 0.66]) + (rng.uniform(0, 0.15) if not masculine else 0) * np.array([0.4, -0.1, 0.0])
    cloth = _CLOTH_COLOURS[rng.choice(len(_CLOTH_COLOURS), p=_CLOTH_P)] * rng.uniform(0.8, 1.15)
    if rng.random() < 0.15:  # anything else
        cloth = rng.uniform(0.05, 0.9, 3)
    return Person(
        identity=int(identity),
        shape=shape,
        skin=_bgr(skin),
        skin_var=rng.uniform([0.02, 0.01], [0.07, 0.04]),
        cheeks=float(rng.uniform(0, 0.6)),
        lips=_bgr(np.clip(lips, 0, 1)),
        brow_colour=_bgr(hair * rng.uniform(0.6, 1.0) if style != "bald" or rng.random() < 0.5 else hair * 0.5),
        brows=(float(rng.uniform(0.55, 1.0)), float(rng.uniform(0.0, 0.7 if masculine else 0.3))),
        beard=tuple(float(b) for b in beard),
        hair_style=style,
        hair_colour=_bgr(np.clip(hair, 0, 1)),
        hairline=(float(rng.uniform(0.6, 1.0)), float(rng.uniform(0.2, 1.0)), float(rng.uniform(0.0, 0.6))),
        hair_thickness=float({"bald": 0, "buzz": 1.5, "short": rng.uniform(5, 14), "volume": rng.uniform(14, 35),
                              "long": rng.uniform(5, 15)}[style]),
        hair_length=float(rng.uniform(80, 320)),
        hair_noise=(float(rng.uniform(0, 0.35)), float(rng.uniform(0, 0.3))),
        eye_colour=_bgr(_EYE_COLOURS[rng.choice(len(_EYE_COLOURS))] * rng.uniform(0.7, 1.2)),
        cloth=_bgr(np.clip(cloth, 0, 1)),
        cloth2=_bgr(_CLOTH_COLOURS[rng.choice(len(_CLOTH_COLOURS), p=_CLOTH_P)]),
        neckline=float(rng.choice([0.0, rng.uniform(0.3, 1.0)], p=[0.6, 0.4])),
        torso=(float(rng.uniform(165, 215) if masculine else rng.uniform(150, 190)), float(rng.uniform(95, 125))),
    )


def sample_expression(rng: np.random.Generator, names: Sequence[str], p_neutral: float = 0.3) -> np.ndarray:
    """Blendshape weights (53,): a target class's action units at 0.45-1, plus small others.

    The class label is derived from the weights afterwards (:func:`labels.expression_class`);
    neutral draws only small random weights.
    """
    w = np.zeros(len(names))
    index = {n: i for i, n in enumerate(names)}
    target = "neutral" if rng.random() < p_neutral else EXPRESSIONS[1 + rng.integers(len(EXPRESSIONS) - 1)]
    # A few random shapes, weak, on every face (gaze, blinks, asymmetries).
    extra = rng.choice(len(names), size=rng.integers(0, 5), replace=False)
    w[extra] = rng.uniform(0, 0.25, len(extra))
    if rng.random() < 0.08:
        w[[index["eyeBlink_L"], index["eyeBlink_R"]]] = rng.uniform(0.7, 1.0)
    if target != "neutral":
        level = rng.uniform(0.45, 1.0)
        for s in EXPRESSION_SHAPES[target]:
            w[index[s]] = np.clip(level + rng.normal(0, 0.08), 0, 1)
        if target == "angry" and rng.random() < 0.5:  # either the lids or the lips carry it
            w[[index["mouthPress_L"], index["mouthPress_R"]]] *= rng.uniform(0, 0.5)
        if target == "happy" and rng.random() < 0.6:
            w[[index["cheekSquint_L"], index["cheekSquint_R"]]] = rng.uniform(0.2, 0.8)
            if rng.random() < 0.4:
                w[index["jawOpen"]] = rng.uniform(0.05, 0.3)
    return w


def _truncnorm(rng: np.random.Generator, sd: float, limit: float) -> float:
    while True:
        x = rng.normal(0, sd)
        if abs(x) <= limit:
            return float(x)


def sample_pose(rng: np.random.Generator, config: SynthConfig) -> np.ndarray:
    """``[yaw, pitch, roll]`` degrees (see :class:`SynthConfig`)."""
    yaw = rng.uniform(*config.yaw_range)
    return np.array([yaw, _truncnorm(rng, config.pitch_sd, config.pitch_max), _truncnorm(rng, config.roll_sd, config.roll_max)])


# ----------------------------------------------------------------------------------------
# Geometry of one head: skinned head mesh, hair shell and curtain, torso.


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
    C[row["cheeks"]] = person.cheeks * _bgr([0.06, -0.05, -0.04])
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
    C[row["mouth"]] = _bgr([0.30, 0.12, 0.12]) * rng.uniform(0.6, 1.2)
    C[row["sclera"]] = _bgr([0.62, 0.57, 0.54]) * rng.uniform(0.8, 1.0)
    C[row["iris"]] = person.eye_colour
    C[row["pupil"]] = 0.02 - person.eye_colour
    C[row["teeth"]] = _bgr([0.85, 0.82, 0.72]) * rng.uniform(0.8, 1.05)
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
    offset = person.hair_thickness * _smoothstep(amount / 0.6) * crown * np.clip(locks, 0.3, 2.0)
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
    ends *= 0.5 + 0.5 * _smoothstep(np.minimum(phi - front, 2 * np.pi - front - phi) / np.deg2rad(40))
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


# ----------------------------------------------------------------------------------------
# Light, backgrounds, occluders, augmentation.


@dataclass
class Light:
    ambient: np.ndarray  # (3,) BGR
    directions: np.ndarray  # (k, 3) unit, from the surface toward the light, camera frame
    colours: np.ndarray  # (k, 3) BGR


def sample_light(rng: np.random.Generator) -> Light:
    """Ambient + one key light from the camera's side (+ sometimes a weaker fill/rim light)."""
    tint = lambda s: np.clip(1 + rng.normal(0, s, 3), 0.8, 1.2)  # noqa: E731
    k = 1 + int(rng.random() < 0.4)
    dirs, cols = [], []
    for i in range(k):
        az, el = rng.uniform(-80, 80) if i == 0 else rng.uniform(-150, 150), rng.uniform(-30, 60)
        a, e = np.deg2rad(az), np.deg2rad(el)
        dirs.append([np.sin(a) * np.cos(e), -np.sin(e), -np.cos(a) * np.cos(e)])
        cols.append(tint(0.04) * (rng.uniform(0.35, 0.85) if i == 0 else rng.uniform(0.1, 0.35)))
    return Light(ambient=tint(0.03) * rng.uniform(0.25, 0.65), directions=np.array(dirs), colours=np.array(cols))


def _lighting(part: Part, light: Light) -> np.ndarray:
    n = raster.vertex_normals(part.verts, part.tris).astype(np.float64)
    if part.two_sided:  # face the camera
        n *= np.where(np.sum(n * part.verts, 1) > 0, -1.0, 1.0)[:, None]
    ao = part.ao.astype(np.float64)[:, None]
    out = light.ambient[None] * (0.3 + 0.7 * ao)
    for d, c in zip(light.directions, light.colours):
        out = out + np.maximum(n @ d, 0)[:, None] * c[None] * (0.5 + 0.5 * ao)
    return out


def photo_crop(rng: np.random.Generator, assets: Assets, size: int) -> Optional[np.ndarray]:
    """(size, size, 3) float BGR crop of a pool photo away from its face, or None without LFW."""
    photo = assets.background_photo(int(rng.integers(1 << 30)))
    if photo is None:
        return None
    h, w = photo.shape[:2]
    fx1, fy1, fx2, fy2 = (np.array(LFW_FACE_BOX) * [w / 250, h / 250, w / 250, h / 250]).astype(int)
    c = int(rng.uniform(0.2, 0.45) * min(h, w))
    for _ in range(20):
        x, y = int(rng.integers(0, w - c + 1)), int(rng.integers(0, h - c + 1))
        if x + c <= fx1 or x >= fx2 or y + c <= fy1 or y >= fy2:
            break
    else:
        x, y = 0, 0
        c = min(fx1, fy1, c)
    crop = photo[y:y + c, x:x + c]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    out = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    return out * rng.uniform(0.85, 1.1, 3).astype(np.float32)


def sample_background(rng: np.random.Generator, assets: Assets, size: int, p_photo: float) -> np.ndarray:
    """(size, size, 3) float BGR: a crop of an LFW photo away from its face, or procedural."""
    if rng.random() < p_photo and (crop := photo_crop(rng, assets, size)) is not None:
        return crop
    # Procedural: a muted, smoothly varying wall with a few soft-edged rectangles (furniture,
    # windows, door frames), as out-of-focus backgrounds look.
    def muted() -> np.ndarray:
        return np.clip(rng.uniform(0.03, 0.9) + rng.normal(0, 0.07, 3), 0, 1)

    coarse = (muted()[None, None] + rng.normal(0, 0.1, (4, 4, 1)) + rng.normal(0, 0.02, (4, 4, 3))).astype(np.float32)
    img = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(rng.integers(0, 4)):
        x0, y0 = rng.integers(-size // 2, size, 2)
        w, h = rng.integers(size // 8, size, 2)
        cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), muted().tolist(), -1)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 4))
    return np.clip(img, 0, 1)


def draw_occluders(rng: np.random.Generator, image: np.ndarray, anchors: np.ndarray, scale: float,
                   assets: Assets) -> np.ndarray:
    """Draw 1-2 occluders near ``anchors`` (N, 2 pixels) of size ~``scale`` px into ``image``.

    Shapes: ellipses, polygons, bars, and hand-like blobs (a palm with fingers in a skin
    colour). Returns the (H, W) bool mask of pixels covered (alpha > 0.5).
    """
    h, w = image.shape[:2]
    covered = np.zeros((h, w), bool)
    for _ in range(1 + int(rng.random() < 0.3)):
        alpha = np.zeros((h, w), np.uint8)
        centre = anchors[rng.integers(len(anchors))] + rng.normal(0, 0.15 * scale, 2)
        s = scale * rng.uniform(0.25, 0.6)
        kind = rng.choice(4, p=[0.25, 0.25, 0.2, 0.3])
        sh = 4  # fixed-point bits for sub-pixel drawing
        to_int = lambda p: np.round(np.asarray(p) * (1 << sh)).astype(np.int32)  # noqa: E731
        if kind == 0:
            cv2.ellipse(alpha, tuple(to_int(centre)), tuple(to_int(rng.uniform(0.4, 1.0, 2) * s)), rng.uniform(0, 180),
                        0, 360, 255, -1, cv2.LINE_AA, sh)
        elif kind == 1:
            k = rng.integers(3, 8)
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            pts = centre + (rng.uniform(0.4, 1.0, k) * s)[:, None] * np.stack([np.cos(ang), np.sin(ang)], 1)
            cv2.fillPoly(alpha, [to_int(pts)], 255, cv2.LINE_AA, sh)
        elif kind == 2:
            a = rng.uniform(0, np.pi)
            d = np.array([np.cos(a), np.sin(a)]) * 3 * s
            cv2.line(alpha, tuple(to_int(centre - d)), tuple(to_int(centre + d)), 255,
                     max(int(rng.uniform(0.15, 0.5) * s), 2), cv2.LINE_AA, sh)
        else:  # hand: palm + fingers fanning out in a direction
            a = rng.uniform(0, 2 * np.pi)
            d = np.array([np.cos(a), np.sin(a)])
            p = np.array([-d[1], d[0]])
            palm = centre - d * 0.5 * s
            cv2.ellipse(alpha, tuple(to_int(palm)), tuple(to_int([0.55 * s, 0.5 * s])), np.rad2deg(a), 0, 360, 255, -1,
                        cv2.LINE_AA, sh)
            for f in range(int(rng.integers(3, 6))):
                base = palm + p * (f - 1.5) * 0.25 * s + d * 0.3 * s
                tip = base + (d + p * rng.normal(0, 0.15)) * s * rng.uniform(0.5, 0.9)
                cv2.line(alpha, tuple(to_int(base)), tuple(to_int(tip)), 255, max(int(0.2 * s), 2), cv2.LINE_AA, sh)
        a = alpha.astype(np.float32)[..., None] / 255
        if kind == 3:
            colour = _bgr(_SKIN_TONES[rng.integers(len(_SKIN_TONES))]) * rng.uniform(0.5, 1.0)
            fill = np.broadcast_to(colour.astype(np.float32), image.shape)
        elif rng.random() < 0.5 and (crop := photo_crop(rng, assets, max(h, w))) is not None:
            fill = crop[:h, :w]
        else:
            fill = np.broadcast_to(rng.uniform(0, 1, 3).astype(np.float32), image.shape)
        # Shade across the occluder so it is not flat.
        g = np.linspace(rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0), w, dtype=np.float32)[None, :, None]
        image[...] = image * (1 - a) + fill * g * a
        covered |= alpha > 127
    return covered


def black_border(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Black out a band along one or two image sides, as crops reaching past a photo's edge
    (AFLW2000's padding); returns the (H, W) bool mask of the band."""
    h, w = image.shape[:2]
    mask = np.zeros((h, w), bool)
    for side in rng.choice(4, size=1 + int(rng.random() < 0.3), replace=False):
        k = int(rng.uniform(0.05, 0.3) * (h if side < 2 else w))
        rows, cols = [(slice(0, k), slice(None)), (slice(h - k, h), slice(None)),
                      (slice(None), slice(0, k)), (slice(None), slice(w - k, w))][side]
        mask[rows, cols] = True
    image[mask] = 0.0
    return mask


def augment(rng: np.random.Generator, image: np.ndarray, config: SynthConfig) -> np.ndarray:
    """Photometric augmentation of a float BGR image in [0, 1]; returns uint8 BGR.

    Hopenet §3.5 low resolution (down-sample by ``low_res_factor``, log-uniform, then back up)
    and Gaussian blur, sensor noise, greyscale, then colour (gain per channel, contrast,
    gamma) as one lookup table on the 8-bit image.
    """
    size = image.shape[0]
    if rng.random() < config.p_low_res:
        factor = np.exp(rng.uniform(*np.log(config.low_res_factor)))
        small = max(int(round(size / factor)), 2)
        image = cv2.resize(cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                           interpolation=cv2.INTER_LINEAR)
    if rng.random() < config.p_blur:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(*config.blur_sigma))
    sd = rng.uniform(*config.noise_sd)
    if sd > 0:
        # OpenCV's generator (seeded from ours) is 4x faster than numpy's normals.
        cv2.setRNGSeed(int(rng.integers(1 << 31)))
        noise = np.empty(image.shape, np.float32)
        cv2.randn(noise, 0.0, float(sd))
        image = image + noise
    out = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < config.p_grey:
        out = np.repeat(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)[..., None], 3, 2)
    x = np.arange(256) / 255.0
    gain, contrast, gamma = rng.uniform(0.93, 1.07, 3), rng.uniform(0.8, 1.2), rng.uniform(0.8, 1.25)
    lut = np.clip((x[:, None] * gain - 0.5) * contrast + 0.5, 0, 1) ** gamma
    return cv2.LUT(out, np.round(lut * 255).astype(np.uint8)[:, None, :])


# ----------------------------------------------------------------------------------------
# Putting it together.


# Vertex-cluster sizes (mm) of the mesh detail levels.
LOD_LEVELS = (2.0, 3.0, 4.5, 7.0, 10.0)


def _lod_cell(mm_per_px: float) -> float:
    """Cluster size for faces drawn at ``mm_per_px``: up to 3 px, on a few fixed levels.

    Clusters of 3 px were indistinguishable from 1.5 px at 128 px (shading is smooth and the
    detail is in the texture) and halve the triangles.
    """
    return max([c for c in LOD_LEVELS if c <= 3.0 * mm_per_px], default=LOD_LEVELS[0])


def _draw(heads: list[Head], light: Light, K: np.ndarray, size: int, ss: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterise and shade heads at ``ss`` x resolution: (colour premultiplied, coverage, depth)."""
    hi = size * ss
    Ks = K.copy()
    Ks[:2, :2] *= ss
    Ks[:2, 2] = (K[:2, 2] + 0.5) * ss - 0.5
    frags = raster.new_fragments(hi, hi)
    all_tris, all_attrs, textures = [], [], []
    n_verts, n_tris = 0, 0
    A = heads[0].texture.shape[0]
    for k, head in enumerate(heads):
        textures.append(head.texture)
        for part in head.parts:
            z = part.verts[:, 2]
            xy = part.verts[:, :2] / np.maximum(z, 1e-6)[:, None] @ Ks[:2, :2].T + Ks[:2, 2]
            screen = np.concatenate([xy, z[:, None]], 1)
            raster.rasterize(screen, part.tris, hi, hi, cull=part.cull, into=frags, id_offset=n_tris)
            attrs = np.zeros((len(part.verts), 9), np.float32)
            attrs[:, :6] = part.attrs
            attrs[:, 0] = (k + part.attrs[:, 0]) / len(heads)  # textures side by side
            attrs[:, 6:9] = _lighting(part, light)
            all_tris.append(part.tris + n_verts)
            all_attrs.append(attrs)
            n_verts += len(part.verts)
            n_tris += len(part.tris)
    texture = np.concatenate(textures, 1) if len(textures) > 1 else textures[0]
    assert texture.shape[0] == A
    colour = raster.shade(frags, np.concatenate(all_tris), np.concatenate(all_attrs), texture)
    coverage = frags.mask.astype(np.float32)
    if ss > 1:
        colour = cv2.resize(colour, (size, size), interpolation=cv2.INTER_AREA)
        coverage = cv2.resize(coverage, (size, size), interpolation=cv2.INTER_AREA)
    return colour, coverage, frags.depth


def _soften_edges(image: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """Cheap anti-aliasing: on the pixels along the silhouette, average with a 3x3 box blur."""
    mask = (coverage > 0.5).astype(np.uint8)
    edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(bool)
    image[edge] = 0.5 * image[edge] + 0.5 * cv2.blur(image, (3, 3))[edge]
    return image


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
    lod = assets.lod(_lod_cell(distance / (f * ss)))
    texture, person = _photo_texture(rng, config, assets, person)
    head = build_head(assets, lod, person, expression, pose, t, rng, torso=rng.random() < config.p_torso,
                      texture=texture)
    light = sample_light(rng)
    colour, coverage, depth = _draw([head], light, K, size, ss)
    background = sample_background(rng, assets, size, config.p_photo_background)
    image = colour + (1 - coverage[..., None]) * background
    if ss == 1:
        image = _soften_edges(image, coverage)
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
        lod = assets.lod(_lod_cell(distance / (f * ss)))
        texture, person = _photo_texture(rng, config, assets, person)
        heads.append(build_head(assets, lod, person, expression, pose, t, rng, torso=rng.random() < config.p_torso,
                                texture=texture))
    light = sample_light(rng)
    colour, coverage, depth = _draw(heads, light, K, size, ss)
    image = colour + (1 - coverage[..., None]) * sample_background(rng, assets, size, config.p_photo_background)
    if ss == 1:
        image = _soften_edges(image, coverage)
    labels = [_labels(assets, h, K, depth, ss, None, size, tolerance_mm=max(3.0, 2 * h.translation[2] / f)) for h in heads]
    return augment(rng, image, replace(config, p_low_res=0.0)), labels


def _photo_texture(rng: np.random.Generator, config: SynthConfig, assets: Assets,
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

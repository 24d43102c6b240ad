"""What every render in a process shares, computed once: the head model at each level of detail,
ambient occlusion, texture layers, the background photo pool."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from facemtl.io import shared_dir
from facemtl.synth import raster
from facemtl.synth.anatomy import COLLAR_Y, IRIS, MOUTH, SCLERA, SKIN, TEETH, hair_bands, neck_weight, smoothstep
from facemtl.synth.config import SynthConfig
from facemtl.synth.facemodel import FaceModel, PARTS, SKIN_V, swatch_box
from facemtl.synth.labels import landmark_visibility


# The background photo pool is a fixed pick of LFW images (same in every process).
BACKGROUND_SALT = 0xB6
BACKGROUND_POOL = 400


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
        self.shared = Path(shared) if shared else None  # None: facemtl.io.shared_dir(), when needed
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
            hair = hair_bands(phi, neutral[:, 1].astype(np.float64), self.brow_y)
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
        bands = hair_bands(phi, y, self.brow_y) * skin[..., None]
        for i in range(3):
            layers[f"hair{i}"] = bands[..., i]
        layers["hair_strands"] = noise(0.6, 6.0) * bands.sum(-1)
        # Clothes on the model's own shoulder stub, continuing the torso's (collar at
        # y = COLLAR_Y); a V-neck opening at the front.
        cloth = smoothstep((y - COLLAR_Y) / 6.0) * skin
        layers["cloth"] = cloth
        v_depth = 60.0 * (1 - np.abs(np.rad2deg(phi)) / 45.0)
        layers["cloth_v"] = cloth * smoothstep((COLLAR_Y + v_depth - y) / 6.0)
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
        layers["iris"] = (inside * (1 - 0.6 * smoothstep((r - 0.8) / 0.2)) * (1 + 0.25 * noise(0.7, 0.7))).astype(np.float32)
        layers["pupil"] = (inside * (1 - smoothstep((r - 0.33) / 0.06))).astype(np.float32)
        names = tuple(layers)
        # Tiny values far from a feature would only cost time: cut them to exact zeros.
        stack = np.stack([np.where(np.abs(layers[n]) < 1e-3, 0, layers[n]).astype(np.float32) for n in names])
        return stack, names

    # -- backgrounds
    def background_photo(self, k: int) -> Optional[np.ndarray]:
        """Photo ``k`` of the fixed LFW background pool (BGR uint8), or None without LFW."""
        if self._backgrounds is None:
            lfw = (self.shared or shared_dir()) / "data" / "lfw"
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


# Vertex-cluster sizes (mm) of the mesh detail levels.
LOD_LEVELS = (2.0, 3.0, 4.5, 7.0, 10.0)


def lod_cell(mm_per_px: float) -> float:
    """Cluster size for faces drawn at ``mm_per_px``: up to 3 px, on a few fixed levels.

    Clusters of 3 px were indistinguishable from 1.5 px at 128 px (shading is smooth and the
    detail is in the texture) and halve the triangles.
    """
    return max([c for c in LOD_LEVELS if c <= 3.0 * mm_per_px], default=LOD_LEVELS[0])

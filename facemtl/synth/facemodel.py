"""The ICT-FaceKit Light head as a linear face model in facemtl's head frame.

Frame (see :mod:`facemtl.geometry.rotations`): millimetres, x toward the image right for a
frontal face (the subject's left), y down, z from the face toward the back of the head (the
nose tip has negative z). ICT's own OBJ frame is centimetres, x the same, y up, z toward the
viewer, so ``head = ALIGNMENT @ diag(10, -10, -10) @ ict``. ``ALIGNMENT`` is the small rotation
that takes ICT's "frontal" onto the AFLW2000 / 300W-LP ``Pose_Para`` frontal (a pitch of a
few degrees, fitted by ``scripts/compute_mean_face.py``); it is recovered from the aligned
mean face ``facemtl/assets/mean_face_68.npy`` (see :func:`frame_alignment`), so the model and
the geometry code share one frontal. The UV atlas is laid out in ICT's own frame and does not
move with it.

Shape: ``vertices = neutral + identity @ id_basis + expression @ expr_basis`` with identity
weights ~ N(0, 1) (100 PCA modes) and expression weights in [0, 1] (53 ARKit-named blendshapes,
``_L`` / ``_R`` = the subject's left / right).

Rendering uses :class:`RenderMesh`: the visible parts only (face, head and neck, mouth
socket, eyeballs, front teeth), its own per-vertex UVs in a texture atlas (see
:data:`ATLAS` and :meth:`FaceModel.render_mesh`), and the model vertex of each render vertex,
so the basis can be evaluated on those vertices alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

from facemtl.io import shared_dir

# ICT-FaceKit Light inside the shared data folder (facemtl.io.shared_dir).
MODEL_FILE = Path("facemodels") / "ict-facekit" / "ict_facekit_light.npz"
MEAN_FACE_ASSET = Path(__file__).resolve().parents[1] / "assets" / "mean_face_68.npy"

# ICT cm (y up, z toward the viewer) -> facemtl mm (y down, z away): a 180 deg turn about x, x10.
ICT_TO_MM = np.diag([10.0, -10.0, -10.0])

# Vertex ranges [start, stop) of the model's parts (ICT-FaceKit README, "Face Model Topology").
PARTS: dict[str, tuple[int, int]] = {
    "face": (0, 9409),
    "head_neck": (9409, 11248),
    "mouth_socket": (11248, 13294),
    "eye_socket_left": (13294, 13678),
    "eye_socket_right": (13678, 14062),
    "gums_tongue": (14062, 17039),
    "teeth": (17039, 21451),
    "eyeball_left": (21451, 23021),
    "eyeball_right": (23021, 24591),
    "lacrimal_fluid": (24591, 24999),
    "eye_blend": (24999, 25047),
    "eye_occlusion": (25047, 25351),
    "eyelashes": (25351, 26719),
    # Sub-parts.
    "face_narrow": (0, 6706),
    "sclera_left": (21451, 22221),
    "iris_left": (22221, 23021),
    "sclera_right": (23021, 23791),
    "iris_right": (23791, 24591),
}

# Teeth kept for rendering: incisors, canines and bicuspids (the molars are never visible at
# the render sizes used); README "Teeth Details" rows #3-#12 (upper) and #19-#28 (lower).
FRONT_TEETH = ((17607, 18679), (19814, 20884))

# Material of each render triangle: what the texture atlas region of its UVs means.
MATERIALS = ("skin", "mouth", "sclera", "iris", "teeth")

# Texture atlas layout, in UV units (u right, v down, both in [0, 1]):
# the skin (face + head + neck) is a cylindrical unwrap about the vertical head axis in the
# rows v < SKIN_V; u = 0.5 is straight ahead (the nose), u grows toward the image right of a
# frontal face, so the left-right mirror of a texel is u -> 1 - u. Below it one row of
# swatches, each a square cell of the bottom strip: [mouth interior, sclera, iris (disc
# centred in the cell, pupil at the centre), teeth].
SKIN_V = 0.875
SWATCH_ORDER = ("mouth", "sclera", "iris", "teeth")
ATLAS = {"skin_v": SKIN_V, "swatches": SWATCH_ORDER}


def swatch_box(name: str) -> tuple[float, float, float, float]:
    """UV box ``(u0, v0, u1, v1)`` of an atlas swatch (see :data:`SWATCH_ORDER`)."""
    i = SWATCH_ORDER.index(name)
    h = 1.0 - SKIN_V
    return (i * h, SKIN_V, (i + 1) * h, 1.0)


# Short hair and the ears on the neutral head (mm; see FaceModel.hair_and_ears): hair above the
# hairline (about half the brow-to-chin height above the brows), behind the temples above the
# brows, and behind the ears' front down to the nape; the ears an ellipse in (y, z) beside the head.
HAIRLINE_Y = -108.0
TEMPLE_Z, TEMPLE_Y = -55.0, -45.0
NAPE_Z, NAPE_Y = -5.0, 25.0
EAR_MIN_X = 66.0
EAR_CENTRE = (-22.0, -8.0)
EAR_RADII = (36.0, 30.0)

# Radius (mm) of the visible iris and of the pupil: ICT's sclera mesh includes the cornea,
# which covers the iris mesh, so the iris has to be painted on the sclera (see iris_discs).
IRIS_RADIUS_MM = 6.0
PUPIL_RADIUS_MM = 2.0


def iris_discs(model: "FaceModel") -> np.ndarray:
    """Where the irises lie on the sclera swatch: (2, 3) rows ``(u, v, radius)`` in UV units.

    ICT's sclera mesh includes the cornea, in front of the iris mesh, so an opaque render
    shows the sclera there: a texture paints each iris as a disc of :data:`IRIS_RADIUS_MM`
    round the iris centre (the sclera swatch is a linear front projection, so a disc stays one).
    """
    rm = model.render_mesh()
    x = model.neutral.astype(np.float64) @ model.alignment  # the atlas's (ICT) frame
    sclera = np.zeros(len(rm.vertex_index), bool)
    sclera[rm.triangles[rm.material == MATERIALS.index("sclera")].ravel()] = True
    xy, uv = x[rm.vertex_index[sclera], :2], rm.uv[sclera].astype(np.float64)
    scale = np.linalg.lstsq(xy - xy.mean(0), uv - uv.mean(0), rcond=None)[0][0, 0]  # UV per mm
    rows = []
    for name in ("iris_right", "iris_left"):
        c = x[slice(*PARTS[name]), :2].mean(0)
        rows.append([*(uv.mean(0) + (c - xy.mean(0)) * scale), IRIS_RADIUS_MM * scale])
    return np.array(rows)


def kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotation ``R`` (3, 3) minimising ``sum |R (src_i - mean src) - (dst_i - mean dst)|^2``."""
    a = src - src.mean(0)
    b = dst - dst.mean(0)
    u, _, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


@dataclass(frozen=True)
class RenderMesh:
    """Triangles for rendering: a subset of the model's vertices with their own UVs.

    ``vertex_index`` (R,) model vertex of each render vertex (a vertex is repeated where the
    UV unwrap has a seam); ``uv`` (R, 2) float32 atlas coordinates in [0, 1] (u right, v down);
    ``triangles`` (F, 3) int32 indices into the render vertices, wound so that
    ``(b - a) x (c - a)`` points out of the head (a triangle facing the camera then has a
    negative 2D cross product in image coordinates, x right, y down); ``material`` (F,) uint8
    index into :data:`MATERIALS`.
    """

    vertex_index: np.ndarray
    uv: np.ndarray
    triangles: np.ndarray
    material: np.ndarray


class FaceModel:
    """ICT-FaceKit Light in facemtl's head frame (mm, x right, y down, z away).

    Attributes: ``neutral`` (V, 3), ``id_basis`` (K, V, 3), ``expr_basis`` (53, V, 3) in mm;
    ``expr_names`` (53,); ``landmark_index`` (68,) model vertex of each iBUG-68 landmark;
    ``triangles`` (F, 3) all of ICT's triangles; ``alignment`` (3, 3) the frame rotation
    applied (see :func:`frame_alignment`).
    """

    def __init__(
        self,
        neutral: np.ndarray,
        id_basis: np.ndarray,
        expr_basis: np.ndarray,
        expr_names: tuple[str, ...],
        landmark_index: np.ndarray,
        triangles: np.ndarray,
        alignment: np.ndarray,
    ):
        self.neutral = neutral
        self.id_basis = id_basis
        self.expr_basis = expr_basis
        self.expr_names = expr_names
        self.landmark_index = landmark_index
        self.triangles = triangles
        self.alignment = alignment
        self._render_mesh: Optional[RenderMesh] = None
        # Basis slices of the vertex subsets evaluated repeatedly (landmarks, render mesh).
        self._slices: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    @property
    def n_vertices(self) -> int:
        return self.neutral.shape[0]

    @property
    def n_identity(self) -> int:
        return self.id_basis.shape[0]

    @property
    def n_expression(self) -> int:
        return self.expr_basis.shape[0]

    @classmethod
    def load(cls, path: Optional[str | Path] = None, n_identity: int = 100, align: bool = True) -> "FaceModel":
        """Read ICT-FaceKit Light from ``path`` (default: :data:`MODEL_FILE` in the shared folder).

        ``n_identity`` keeps the first (largest) identity modes. ``align=False`` skips the
        frame alignment rotation (ICT's own frontal, only mm and axis flips applied).
        Cached per arguments: the returned object is shared, treat it as read-only.
        """
        return _load_cached(str(Path(path) if path is not None else shared_dir() / MODEL_FILE), n_identity, align)

    def expression_index(self, name: str) -> int:
        """Index of an expression blendshape by ICT name, e.g. ``"jawOpen"``."""
        try:
            return self.expr_names.index(name)
        except ValueError:
            raise KeyError(f"unknown expression {name!r}; known: {', '.join(self.expr_names)}") from None

    def vertices(
        self,
        identity: Optional[np.ndarray] = None,
        expression: Optional[np.ndarray] = None,
        index: Optional[np.ndarray] = None,
    ) -> np.ndarray:
        """Head-frame vertices in mm, (..., V, 3) (or (..., len(index), 3) with ``index``).

        ``identity`` (..., k) with k <= n_identity weights of the first k modes (N(0, 1)
        scale); ``expression`` (..., 53) blendshape weights (0 = neutral, 1 = full); either may
        be ``None`` (zeros). ``index`` restricts the evaluation to those model vertices.
        """
        neutral, id_basis, expr_basis = self._bases(index)
        n = neutral.shape[0]
        out = neutral.reshape(-1)
        if identity is not None:
            identity = np.asarray(identity, dtype=np.float32)
            out = out + identity @ id_basis[: identity.shape[-1]]
        if expression is not None:
            out = out + np.asarray(expression, dtype=np.float32) @ expr_basis
        return np.array(out, dtype=np.float32).reshape(out.shape[:-1] + (n, 3))

    def _bases(self, index: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Neutral (n, 3) and flattened bases (K, 3n), (E, 3n) at ``index`` (cached slices)."""
        if index is None:
            V = self.n_vertices
            return self.neutral, self.id_basis.reshape(-1, 3 * V), self.expr_basis.reshape(-1, 3 * V)
        index = np.asarray(index)
        key = index.tobytes()
        if key not in self._slices:
            if len(self._slices) >= 8:
                self._slices.pop(next(iter(self._slices)))
            n = len(index)
            self._slices[key] = (
                self.neutral[index],
                np.ascontiguousarray(self.id_basis[:, index].reshape(-1, 3 * n)),
                np.ascontiguousarray(self.expr_basis[:, index].reshape(-1, 3 * n)),
            )
        return self._slices[key]

    def landmarks_3d(
        self, identity: Optional[np.ndarray] = None, expression: Optional[np.ndarray] = None
    ) -> np.ndarray:
        """The 68 iBUG landmarks in the head frame, mm, (..., 68, 3)."""
        return self.vertices(identity, expression, index=self.landmark_index)

    def part_mask(self, *names: str) -> np.ndarray:
        """Boolean (V,) mask of the vertices in the named parts (keys of :data:`PARTS`)."""
        mask = np.zeros(self.n_vertices, dtype=bool)
        for name in names:
            if name not in PARTS:
                raise KeyError(f"unknown part {name!r}; known: {', '.join(PARTS)}")
            a, b = PARTS[name]
            mask[a:b] = True
        return mask

    def hair_and_ears(self) -> tuple[np.ndarray, np.ndarray]:
        """Boolean (V,) masks of where short hair and the ears lie on the neutral head (mm, the
        aligned frame: x right, y down, z away from the camera of a frontal view; origin between
        the ears). Rough regions for giving a turned photo's head a side of its own
        (:func:`facemtl.synth.texture.photo_texture`'s ``head_content``), not anatomy."""
        x, y, z = self.neutral.astype(np.float64).T
        ear = (np.abs(x) > EAR_MIN_X) & (((y - EAR_CENTRE[0]) / EAR_RADII[0]) ** 2
                                         + ((z - EAR_CENTRE[1]) / EAR_RADII[1]) ** 2 < 1)
        hair = (y < HAIRLINE_Y) | ((z > TEMPLE_Z) & (y < TEMPLE_Y)) | ((z > NAPE_Z) & (y < NAPE_Y))
        return hair & ~ear, ear

    def render_mesh(self) -> RenderMesh:
        """The rendering subset with atlas UVs (computed once, cached on the model)."""
        if self._render_mesh is None:
            self._render_mesh = _build_render_mesh(self)
        return self._render_mesh


def frame_alignment(ict_landmarks_mm: np.ndarray, asset: Path = MEAN_FACE_ASSET) -> np.ndarray:
    """Rotation taking ICT's frontal (mm, y down, z away) onto the ``Pose_Para`` frontal.

    The one source of truth is the aligned mean face ``facemtl/assets/mean_face_68.npy``
    (68, 3) written by ``scripts/compute_mean_face.py``: it is the ICT neutral's 68 landmarks
    rotated into the ``Pose_Para`` frame, so the rotation is recovered exactly by Kabsch.
    Without the asset the identity is returned (ICT's own frontal).
    """
    if not asset.is_file():
        return np.eye(3)
    mean = np.load(asset).astype(np.float64)
    if mean.shape != (68, 3):
        raise ValueError(f"{asset}: expected a (68, 3) mean face, got {mean.shape}")
    return kabsch(ict_landmarks_mm, mean)


@lru_cache(maxsize=4)
def _load_cached(path: str, n_identity: int, align: bool) -> FaceModel:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: ICT-FaceKit Light model not found (give its path)")
    d = np.load(p)
    lm = d["landmarks68"].astype(np.int64)
    neutral_mm = d["neutral"].astype(np.float64) @ ICT_TO_MM
    R = frame_alignment(neutral_mm[lm]) if align else np.eye(3)
    M = (ICT_TO_MM @ R.T).astype(np.float32)  # row vectors: x_head = x_ict @ M
    return FaceModel(
        neutral=d["neutral"].astype(np.float32) @ M,
        id_basis=d["id_deltas"][:n_identity].astype(np.float32) @ M,
        expr_basis=d["expr_deltas"].astype(np.float32) @ M,
        expr_names=tuple(str(s) for s in d["expr_names"]),
        landmark_index=lm,
        triangles=d["tri"].astype(np.int32),
        alignment=R,
    )


def _build_render_mesh(model: FaceModel) -> RenderMesh:
    V = model.n_vertices
    vmat = np.full(V, -1, dtype=np.int64)
    for name, mat in (
        ("face", "skin"),
        ("head_neck", "skin"),
        ("mouth_socket", "mouth"),
        ("sclera_left", "sclera"),
        ("sclera_right", "sclera"),
        ("iris_left", "iris"),
        ("iris_right", "iris"),
    ):
        a, b = PARTS[name]
        vmat[a:b] = MATERIALS.index(mat)
    for a, b in FRONT_TEETH:
        vmat[a:b] = MATERIALS.index("teeth")

    tri = model.triangles.astype(np.int64)
    tmat = vmat[tri]
    keep = (tmat >= 0).all(1)
    tri, tmat = tri[keep], tmat[keep]
    # A triangle on a part border takes its corners' majority material (else its first's).
    material = np.where(tmat[:, 1] == tmat[:, 2], tmat[:, 1], tmat[:, 0])

    # The atlas is laid out in ICT's own frontal, so it does not move with the frame alignment.
    # (Rounded, and -0 made +0, so the mid-line's side of the back seam is exact.)
    x = np.round(model.neutral.astype(np.float64) @ model.alignment, 5) + 0.0
    uv = np.stack([_material_uv(x, mat, vmat) for mat in MATERIALS])  # (M, V, 2)

    # Render vertex = (model vertex, material, seam side): a vertex on a material border or on
    # the skin's back seam is repeated with the UV its triangle needs.
    corner_uv = uv[material[:, None], tri]  # (F, 3, 2)
    tu = corner_uv[..., 0]
    seam = (material == MATERIALS.index("skin"))[:, None] & (tu.max(1) - tu.min(1) > 0.5)[:, None] & (tu < 0.5)
    # Skin triangles across the back seam (angle +-pi): their low-u corners get u = 1 so no
    # triangle spans the whole atlas; the distortion stays on one strip at the back.
    corner_uv[..., 0] = np.where(seam, 1.0, tu)
    key = (tri * len(MATERIALS) + material[:, None]) * 2 + seam
    uniq, inv = np.unique(key.ravel(), return_inverse=True)
    first = np.zeros(len(uniq), dtype=np.int64)
    first[inv[::-1]] = np.arange(inv.size)[::-1]
    return RenderMesh(
        vertex_index=(uniq // 2 // len(MATERIALS)).astype(np.int64),
        uv=np.clip(corner_uv.reshape(-1, 2)[first], 0.0, 1.0).astype(np.float32),
        triangles=inv.reshape(-1, 3).astype(np.int32),
        material=material.astype(np.uint8),
    )


def _material_uv(x: np.ndarray, mat: str, vmat: np.ndarray) -> np.ndarray:
    """Atlas UVs (V, 2) of all vertices ``x`` under one material's mapping."""
    sel = vmat == MATERIALS.index(mat)
    if mat == "skin":
        # Cylinder about a vertical axis at x = 0 whose depth follows the middle of each
        # height's slice of the head (the neck's centre lies behind the face's).
        y, z = x[sel, 1], x[sel, 2]
        edges = np.linspace(y.min(), y.max(), 25)
        slices = [z[(y >= a) & (y <= b)] for a, b in zip(edges[:-1], edges[1:])]
        mids = [(zs.min() + zs.max()) / 2 for zs in slices]
        axis_z = np.interp(x[:, 1], (edges[:-1] + edges[1:]) / 2, mids)
        # Angle 0 straight ahead (-z), positive toward +x.
        ang = np.arctan2(x[:, 0], -(x[:, 2] - axis_z))
        return np.stack([0.5 + ang / (2 * np.pi), (x[:, 1] - y.min()) / (y.max() - y.min()) * SKIN_V], 1)
    if mat == "iris":
        # Each eye's iris about its own centre, both onto the same disc of the swatch.
        out = np.zeros((len(x), 2))
        u0, v0, u1, v1 = swatch_box("iris")
        c, h = np.array([(u0 + u1) / 2, (v0 + v1) / 2]), 0.45 * (u1 - u0)
        for side, name in ((-1, "iris_left"), (1, "iris_right")):
            a, b = PARTS[name]
            centre = x[a:b, :2].mean(0)
            r = np.abs(x[a:b, :2] - centre).max()
            near = np.sign(x[:, 0]) == np.sign(centre[0])
            out[near] = c + (x[near, :2] - centre) / r * h
        return out
    # Mouth, sclera, teeth: front projection into their swatch (their colour barely varies).
    return _fit_box(x[:, :2], x[sel, :2], swatch_box(mat), margin=0.1)


def _fit_box(p: np.ndarray, ref: np.ndarray, box: tuple[float, float, float, float], margin: float) -> np.ndarray:
    """Map points (N, 2) into the UV box so that ``ref`` fills it (aspect kept, relative margin)."""
    u0, v0, u1, v1 = box
    lo, hi = ref.min(0), ref.max(0)
    s = (1 - 2 * margin) * min(u1 - u0, v1 - v0) / max((hi - lo).max(), 1e-9)
    centre = np.array([(u0 + u1) / 2, (v0 + v1) / 2])
    return centre + (p - (lo + hi) / 2) * s

"""Photo textures: a real photo's colours sampled into the face model's UV atlas.

Given a photo and a :class:`~facemtl.synth.fit.FitResult`, every atlas texel of the fitted
head (see :data:`facemtl.synth.facemodel.ATLAS`) is located in the photo by rasterising the
render mesh in UV space with the photo-space position as attribute. A texel takes the photo's
colour where its surface point is the front-most one there (z-buffer of the mesh in the photo)
and faces the camera. Unseen skin is filled from its mirror texel (``u -> 1 - u``), then by a
smooth push-pull fill from what is seen (the back of the head inherits the hair colours of
the crown, the neck those of the jaw); with ``soft_seams`` the mirrored and filled skin take the
local shading of what is seen and blend into it (:func:`blend_seams`). Unseen swatch texels
(mouth, sclera, iris, teeth) take default colours scaled to the photo's brightness. Lighting
stays baked in, as in 300W-LP.

:class:`PhotoTexture` holds the atlas and the fit it came from; it saves to and loads from a
small ``.npz``. :func:`random_texture` serves the synthetic engine from a pool of LFW photos
(landmarks from ``facemtl/assets/lfw_landmarks.npz``), computing each texture once and
caching it in memory and on disk (``FACEMTL_TEXTURE_CACHE``, default
``~/.cache/facemtl/textures``). Textures are never committed. The LFW copy in
``../shared/data/lfw`` has a green box and dots drawn into every photo: :func:`lfw_photo`
removes them (:func:`remove_overlay`) before anything samples the photo.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional
import zlib

import cv2
import numpy as np

from facemtl.synth import raster
from facemtl.synth.facemodel import IRIS_RADIUS_MM, PUPIL_RADIUS_MM, SKIN_V, FaceModel, iris_discs, swatch_box
from facemtl.synth.fit import FitResult, fit_landmarks

LFW_LANDMARKS = Path(__file__).resolve().parents[1] / "assets" / "lfw_landmarks.npz"
# A texel is taken from the photo where its surface faces the camera at least this much
# (cosine of the angle between its normal and the view ray): grazing texels smear. The bald
# model's skull and neck meet the photo's hair and background near their silhouette: stricter.
MIN_FACING = 0.3
MIN_FACING_HEAD = 0.55
# soft_seams: the band (a fraction of the atlas side) over which seen, mirrored and filled skin blend.
SEAM_BAND = 0.025
# Depth tolerance (mm) of the photo z-buffer test.
DEPTH_TOL = 5.0
# head_content: a photo that shows fewer hair texels than MIN_HAIR_TEXELS gets hair of HAIR_COLOUR
# (BGR in [0, 1], dark brown); the filled hair's strands vary its brightness by +-HAIR_STRANDS (1 SD).
MIN_HAIR_TEXELS = 50
HAIR_COLOUR = (0.10, 0.13, 0.18)
HAIR_STRANDS = 0.12
# Swatch defaults, BGR in [0, 1], before brightness scaling.
SWATCH_COLOURS = {
    "mouth": (0.12, 0.12, 0.30),
    "sclera": (0.80, 0.82, 0.86),
    "iris": (0.10, 0.16, 0.28),
    "teeth": (0.72, 0.82, 0.85),
}
# Pool of LFW photos random_texture draws from (a fixed random subset of the labelled ones).
POOL_SIZE = 400
POOL_SALT = 0x7E7
# Fits worse than this (mean px on a 250x250 photo) are not used as textures.
MAX_FIT_ERROR = 3.0


@dataclass
class PhotoTexture:
    """A UV atlas texture (A, A, 3) BGR uint8 from one photo, with the fit it came from.

    ``seen`` (A, A) uint8: 1 where the texel was sampled from the photo, 2 where it came from
    its mirror texel, 0 where it was filled. ``fit`` is the photo's landmark fit (so the head
    can be rendered with the photo's own shape, or the photo profiled); ``source`` names it.
    """

    texture: np.ndarray
    seen: np.ndarray
    fit: FitResult
    source: str = ""

    @property
    def identity(self) -> np.ndarray:
        return self.fit.identity

    @property
    def expression(self) -> np.ndarray:
        return self.fit.expression

    @property
    def pose(self) -> np.ndarray:
        return self.fit.pose

    @property
    def reprojection_error(self) -> float:
        return self.fit.reprojection_error

    def as_float(self) -> np.ndarray:
        """The atlas as float32 BGR in [0, 1] (what :func:`facemtl.synth.raster.shade` takes)."""
        return self.texture.astype(np.float32) / 255.0

    def save(self, path: str | Path) -> None:
        f = self.fit
        np.savez_compressed(
            path,
            texture=self.texture,
            seen=self.seen,
            source=np.array(self.source),
            **{f"fit_{k}": np.asarray(getattr(f, k)) for k in _FIT_FIELDS},
        )

    @classmethod
    def load(cls, path: str | Path) -> "PhotoTexture":
        with np.load(path) as d:
            fields = {k: d[f"fit_{k}"] for k in _FIT_FIELDS}
            fields["focal"] = float(fields["focal"])
            fields["image_size"] = tuple(int(v) for v in fields["image_size"])
            return cls(texture=d["texture"], seen=d["seen"], fit=FitResult(**fields), source=str(d["source"]))


_FIT_FIELDS = (
    "rotation", "translation", "focal", "center", "identity", "expression", "landmark_vertex", "errors", "image_size"
)


def photo_texture(
    image: np.ndarray, fit: FitResult, model: Optional[FaceModel] = None, size: int = 256, source: str = "",
    soft_seams: bool = False, head_content: bool = False,
) -> PhotoTexture:
    """Sample ``image`` (BGR uint8) into a ``size`` x ``size`` atlas through ``fit``.

    ``soft_seams``: the skin's mirror and filled texels take the local shading of what is seen and
    blend into it over a band (:func:`blend_seams`) instead of meeting it at a hard, ragged edge.
    ``head_content``: the side and back of the head get hair and ears of their own: the hair and ear
    regions (:meth:`FaceModel.hair_and_ears`) take the photo only where it faces the camera as
    squarely as the skull must (beside the face, the photo there is mostly background); unseen ears
    are skin, unseen hair is filled from the seen hair (:func:`hair_fill`).
    """
    model = model or FaceModel.load()
    rm = model.render_mesh()
    h, w = image.shape[:2]
    head = fit.vertices(model, index=rm.vertex_index).astype(np.float64)
    cam = fit.to_camera(head)
    pix = fit.project(head)
    normals = raster.vertex_normals(cam.astype(np.float32), rm.triangles).astype(np.float64)
    view = -cam / np.linalg.norm(cam, axis=1, keepdims=True)
    facing = np.sum(normals * view, axis=1)
    head_part = model.part_mask("head_neck")[rm.vertex_index]
    hair = np.zeros(len(rm.vertex_index), bool)
    if head_content:
        hair, ear = (mask[rm.vertex_index] for mask in model.hair_and_ears())
        head_part = head_part | hair | ear

    # The photo's z-buffer of the fitted head.
    zbuf = raster.rasterize(np.c_[pix, cam[:, 2]], rm.triangles, h, w, cull=True).depth

    # UV-space rasterisation: where two triangles share texels (ears over the head, the two
    # irises on one disc), the one facing the camera more wins; depth ~1 keeps the barycentrics
    # affine.
    uvz = np.c_[rm.uv * size - 0.5, 1.0 + 0.01 * (1.0 - facing)]
    frags = raster.rasterize(uvz, rm.triangles, size, size, cull=False)
    attrs = np.c_[pix, cam[:, 2], facing - np.where(head_part, MIN_FACING_HEAD, MIN_FACING), hair]
    at = raster.interpolate(frags, rm.triangles, attrs)
    covered = frags.mask
    x, y, z, f = at[..., 0], at[..., 1], at[..., 2], at[..., 3]
    inside = covered & (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    xi = np.clip(np.round(x).astype(np.int64), 0, w - 1)
    yi = np.clip(np.round(y).astype(np.int64), 0, h - 1)
    visible = inside & (f > 0) & (z <= zbuf[yi, xi] + DEPTH_TOL)
    # Texels at the visible region's edge blend with what lies beside the head: drop a rim.
    visible &= cv2.erode(visible.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    sampled = cv2.remap(
        image, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )

    tex = np.zeros((size, size, 3), np.float32)
    tex[visible] = sampled[visible]
    seen = visible.astype(np.uint8)

    # Skin: mirror, then push-pull fill of the rest.
    rows = int(round(SKIN_V * size))
    skin_tex, skin_seen = tex[:rows], seen[:rows]
    mirror = (skin_seen == 0) & (skin_seen[:, ::-1] == 1)
    if not skin_seen.any():
        skin_tex[:] = (180, 190, 215)
    elif soft_seams:
        skin_tex[:] = blend_seams(skin_tex, skin_seen == 1, band=SEAM_BAND * size)
    else:
        skin_tex[:] = mirror_fill(skin_tex, skin_seen == 1)
    skin_seen[mirror] = 2
    if head_content:
        hair_texels = covered[:rows] & (at[:rows, :, 4] > 0.5)
        # The hair's colour: the median of what the photo shows there at a looser angle (its
        # silhouette brings some background, the median little of it).
        loose = hair_texels & inside[:rows] & (f[:rows] > MIN_FACING - MIN_FACING_HEAD)
        colour = np.median(sampled[:rows][loose], 0) if loose.sum() >= MIN_HAIR_TEXELS else None
        skin_tex[:] = hair_fill(skin_tex, hair_texels, hair_texels & visible[:rows], colour,
                                np.random.default_rng(zlib.crc32(image[::8, ::8].tobytes())))
        skin_seen[hair_texels & ~visible[:rows]] = 0
    _paint_swatches(tex, seen, image, fit, model)
    return PhotoTexture(texture=np.clip(tex + 0.5, 0, 255).astype(np.uint8), seen=seen, fit=fit, source=source)


def _paint_swatches(tex: np.ndarray, seen: np.ndarray, image: np.ndarray, fit: FitResult, model: FaceModel) -> None:
    """Paint the eyeball, iris and mouth swatches of the atlas ``tex`` (S, S, 3) in place, marked unseen.

    The fitted eyeballs and mouth are too imprecise to sample (eyelids, lips and shadows land on
    them), so they get colours: defaults scaled to the face's brightness, the iris from the darkest
    pixels inside the photo's eye openings."""
    size = tex.shape[0]
    h, w = image.shape[:2]
    lm = fit.project(model.landmarks_3d(fit.identity, fit.expression))
    x0, y0 = np.maximum(lm.min(0).astype(int), 0)
    x1, y1 = lm.max(0).astype(int)
    bright = np.clip(float(np.median(image[y0:y1, x0:x1])) / 160.0, 0.5, 1.5)
    eyes = np.zeros((h, w), np.uint8)
    for k in (36, 42):
        cv2.fillPoly(eyes, [np.round(lm[k : k + 6]).astype(np.int32)], 1)
    eye_px = image[eyes > 0].astype(np.float32)
    colours = {name: np.array(c, np.float32) * 255 * bright for name, c in SWATCH_COLOURS.items()}
    if len(eye_px) >= 8:
        dark = eye_px[np.argsort(eye_px.sum(1))[: max(len(eye_px) // 4, 2)]]
        colours["iris"] = np.median(dark, 0)
    for name, colour in colours.items():
        u0, v0, u1, v1 = (int(round(c * size)) for c in swatch_box(name))
        tex[v0:v1, u0:u1] = colours["sclera"] if name == "iris" else colour
        seen[v0:v1, u0:u1] = 0
    # Irises with darker pupils: on the iris swatch's disc (as facemodel maps it: radius 0.45
    # of the cell) and on the sclera over the cornea (see facemodel.iris_discs).
    u0, v0, u1, v1 = swatch_box("iris")
    discs = np.r_[[[(u0 + u1) / 2, (v0 + v1) / 2, 0.45 * (u1 - u0)]], iris_discs(model)]
    vv, uu = (np.mgrid[0:size, 0:size] + 0.5) / size
    for cu, cv, radius in discs:
        r = np.hypot(uu - cu, vv - cv) / radius
        tex[r < 1] = colours["iris"]
        tex[r < PUPIL_RADIUS_MM / IRIS_RADIUS_MM] = colours["iris"] * 0.35


def hair_fill(tex: np.ndarray, hair: np.ndarray, seen: np.ndarray, colour: Optional[np.ndarray],
              rng: np.random.Generator) -> np.ndarray:
    """``tex`` (H, W, 3) float with its ``hair`` texels that are not ``seen`` filled: push-pull from
    the seen ones over ``colour`` (BGR 0-255; when ``None`` the seen hair's mean, or dark brown where
    the photo shows too little hair), with strands (noise stretched along v, down the head:
    +-HAIR_STRANDS in brightness), fading into what is there over the seam band."""
    enough = seen.sum() >= MIN_HAIR_TEXELS
    if colour is None:
        colour = tex[seen].mean(0) if enough else np.array(HAIR_COLOUR) * 255
    base = np.asarray(colour, np.float32)
    filled = push_pull_fill(tex, seen, base=base) if enough else np.broadcast_to(base, tex.shape)
    side = tex.shape[1]
    noise = cv2.GaussianBlur(rng.standard_normal(tex.shape[:2]).astype(np.float32), (0, 0), 0.4, sigmaY=0.02 * side)
    strands = 1 + HAIR_STRANDS * noise / max(float(noise.std()), 1e-6)
    a = ramp(hair & ~seen, SEAM_BAND * side)[..., None]
    return a * filled * strands[..., None] + (1 - a) * tex


def mirror_fill(tex: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill the unknown texels of ``tex`` (H, W, 3): from the mirror texel (``u -> 1 - u``) where it
    is known, then by a push-pull fill; each source meets the next at a hard edge."""
    mirror = ~known & known[:, ::-1]
    out = tex.copy()
    out[mirror] = tex[:, ::-1][mirror]
    return push_pull_fill(out, known | mirror)


def ramp(mask: np.ndarray, band: float) -> np.ndarray:
    """(H, W) float32: 0 outside ``mask``, rising to 1 at ``band`` pixels inside it."""
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    return np.clip(inside / band, 0, 1)


def blend_seams(tex: np.ndarray, known: np.ndarray, band: float) -> np.ndarray:
    """Fill the unknown texels of ``tex`` (H, W, 3) float from the ``known`` ones without seams.

    Every texel gets the local shading of what is known (a push-pull fill, blurred); the mirror
    texel's detail (its colour less that shading) is added where the mirror texel is known (``u ->
    1 - u``); and each source fades into the next over ``band`` texels from its edge, so the known
    skin, the mirrored skin and the plain fill meet without a visible boundary.
    """
    sigma = max(band / 2, 1.0)
    shading = cv2.GaussianBlur(push_pull_fill(tex, known, base=tex[known].mean(0)), (0, 0), sigma)
    mirrored = shading + (tex - shading)[:, ::-1]

    a_seen, a_mirror = ramp(known, band)[..., None], ramp(known[:, ::-1], band)[..., None]
    return a_seen * tex + (1 - a_seen) * (a_mirror * mirrored + (1 - a_mirror) * shading)


def remove_overlay(image: np.ndarray) -> np.ndarray:
    """``image`` with thin pure-green drawings (boxes, landmark dots, digits) inpainted.

    The LFW copy in ``../shared/data/lfw`` has a green face box and 68 green dots burned into
    every photo; left in, they would be sampled into the textures. Large green areas (grass,
    clothes) are not thin and are kept.
    """
    px = image.astype(np.int16)
    d = px[..., 1] - np.maximum(px[..., 0], px[..., 2])  # greenness
    # Greener than the neighbourhood (dots on skin are not green in absolute terms).
    local = cv2.medianBlur(np.clip(d + 128, 0, 255).astype(np.uint8), 11).astype(np.int16) - 128
    green = ((d - local > 12) & (d > -15)).astype(np.uint8)
    if not green.any():
        return image
    thick = cv2.morphologyEx(green, cv2.MORPH_OPEN, np.ones((7, 7), np.uint8))
    mask = cv2.dilate(green & (1 - thick), np.ones((3, 3), np.uint8))
    return cv2.inpaint(image, mask, 3, cv2.INPAINT_TELEA)


def push_pull_fill(img: np.ndarray, known: np.ndarray, base: Optional[np.ndarray] = None) -> np.ndarray:
    """Fill the unknown pixels of ``img`` (H, W, C) smoothly from the known ones.

    Push: average the known pixels down an image pyramid; pull: fill each level's holes from
    the next coarser level, upsampled. ``base`` colours the coarsest level where nothing is known.
    """
    def resize(a: np.ndarray, shape: tuple[int, ...], interpolation: int) -> np.ndarray:
        # (cv2 drops a single channel axis; keep it.)
        return cv2.resize(a, (shape[1], shape[0]), interpolation=interpolation).reshape(shape[:2] + a.shape[2:])

    levels = []
    cur, wt = img.astype(np.float32) * known[..., None], known.astype(np.float32)
    while True:
        levels.append((cur, wt))
        if min(cur.shape[:2]) <= 2:
            break
        half = (max(cur.shape[0] // 2, 1), max(cur.shape[1] // 2, 1))
        cur, wt = resize(cur, half, cv2.INTER_AREA), resize(wt, half, cv2.INTER_AREA)
    cur, wt = levels[-1]
    filled = cur / np.maximum(wt, 1e-6)[..., None]
    if base is not None:
        filled = np.where(wt[..., None] > 1e-6, filled, base)
    for cur, wt in reversed(levels[:-1]):
        up = resize(filled, cur.shape, cv2.INTER_LINEAR)
        a = np.clip(wt, 0, 1)[..., None]
        filled = a * (cur / np.maximum(wt, 1e-6)[..., None]) + (1 - a) * up
    return np.where(known[..., None], img, filled)


# ----------------------------------------------------------------------------------------
# LFW pool for the synthetic engine.


def default_cache_dir() -> Path:
    return Path(os.environ.get("FACEMTL_TEXTURE_CACHE", Path.home() / ".cache" / "facemtl" / "textures"))


@lru_cache(maxsize=1)
def _lfw_labels() -> dict[str, np.ndarray]:
    with np.load(LFW_LANDMARKS) as d:
        return {k: d[k] for k in d.files}


def lfw_pool(size: int = POOL_SIZE) -> list[str]:
    """Relative LFW paths of the texture pool: a fixed random subset of the detected faces."""
    labels = _lfw_labels()
    detected = np.flatnonzero(np.isfinite(labels["score"]))
    pick = np.random.default_rng(POOL_SALT).permutation(detected)[:size]
    return [str(labels["path"][i]) for i in sorted(pick)]


def lfw_photo(lfw_dir: str | Path, rel_path: str) -> tuple[np.ndarray, np.ndarray, int]:
    """An LFW photo with its drawn overlay removed, its 68 dlib landmarks and its asset index."""
    labels = _lfw_labels()
    hits = np.flatnonzero(labels["path"] == rel_path)
    if not len(hits):
        raise KeyError(f"{rel_path}: not in {LFW_LANDMARKS}")
    from facemtl.io import read_image

    image = remove_overlay(read_image(Path(lfw_dir) / rel_path))
    return image, labels["landmarks"][hits[0]].astype(np.float64), int(hits[0])


def lfw_texture(
    lfw_dir: str | Path, rel_path: str, size: int = 256, cache_dir: Optional[str | Path] = None
) -> PhotoTexture:
    """The photo texture of one LFW photo (fit to its dlib landmarks of the asset), disk-cached.

    The cache key includes the model's frame alignment, so a new frame refits.
    """
    model = FaceModel.load()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    frame = hashlib.sha1(np.round(model.alignment, 9).tobytes()).hexdigest()[:8]
    cached = cache / f"v1-{frame}-{size}" / (rel_path.replace("/", "__").rsplit(".", 1)[0] + ".npz")
    if cached.is_file():
        return PhotoTexture.load(cached)
    image, landmarks, _ = lfw_photo(lfw_dir, rel_path)
    fit = fit_landmarks(landmarks, (image.shape[1], image.shape[0]), model)
    tex = photo_texture(image, fit, model, size=size, source=rel_path)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp.npz")
    tex.save(tmp)
    os.replace(tmp, cached)  # atomic: parallel workers may write the same texture
    return tex


_MEMORY: dict[tuple[str, str, int], Optional[PhotoTexture]] = {}


def random_photo_texture(rng: np.random.Generator, lfw_dir: str | Path, size: int = 256) -> Optional[PhotoTexture]:
    """A random :class:`PhotoTexture` of the LFW pool, or None when its fit is poor.

    Each texture is computed once (a fit and a sampling, ~0.5 s) and then served from memory
    and the disk cache.
    """
    pool = lfw_pool()
    rel = pool[int(rng.integers(len(pool)))]
    key = (str(lfw_dir), rel, size)
    if key not in _MEMORY:
        tex = lfw_texture(lfw_dir, rel, size)
        _MEMORY[key] = tex if tex.reprojection_error <= MAX_FIT_ERROR else None
    return _MEMORY[key]


def random_texture(rng: np.random.Generator, lfw_dir: str | Path, size: int = 256) -> Optional[np.ndarray]:
    """The atlas of :func:`random_photo_texture` as float32 BGR [0, 1] (size, size, 3), or None."""
    tex = random_photo_texture(rng, lfw_dir, size)
    return None if tex is None else tex.as_float()

"""Compositing an image: shading and drawing the parts, backgrounds, occluders, black borders,
photometric augmentation."""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from facemtl.synth import raster
from facemtl.synth.assets import Assets
from facemtl.synth.config import SynthConfig
from facemtl.synth.head import Head, Part
from facemtl.synth.person import Light, SKIN_TONES, bgr


# LFW's 250x250 images have the face in this central box (x1, y1, x2, y2): crops avoid it.
LFW_FACE_BOX = (68, 55, 182, 195)


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
            colour = bgr(SKIN_TONES[rng.integers(len(SKIN_TONES))]) * rng.uniform(0.5, 1.0)
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


def draw(heads: list[Head], light: Light, K: np.ndarray, size: int, ss: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def soften_edges(image: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """Cheap anti-aliasing: on the pixels along the silhouette, average with a 3x3 box blur."""
    mask = (coverage > 0.5).astype(np.uint8)
    edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(bool)
    image[edge] = 0.5 * image[edge] + 0.5 * cv2.blur(image, (3, 3))[edge]
    return image

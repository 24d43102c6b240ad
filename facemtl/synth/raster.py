"""A small z-buffer triangle rasteriser (numba, CPU), deferred: geometry first, shading after.

Conventions
    Screen coordinates are pixels, x right, y down, with **pixel centres at integer
    coordinates** (pixel ``[i, j]`` is sampled at ``x = j, y = i``), the convention of
    OpenCV's ``projectPoints`` and of facemtl's 0-based landmarks.
    Vertices come as ``(x, y, z)`` with ``z`` the camera-frame depth (> 0 in front of the
    camera). Depth is tested on ``1 / z``, which is affine in screen space, and barycentric
    weights are perspective-correct, so attributes interpolate as on the 3D surface.
    Front faces are counter-clockwise seen from outside in a right-handed frame, which is
    clockwise on a y-down screen: negative signed screen area ``(x1-x0)(y2-y0) - (x2-x0)(y1-y0)``.

:func:`rasterize` writes, per pixel, the nearest triangle id (-1 = empty), its depth and the
barycentric weights of its first two corners; :func:`interpolate` turns these into any
per-vertex attribute image; :func:`shade` is the textured, lit shader of the synthetic
engine. All kernels are compiled once (``cache=True``) and release the GIL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np


@dataclass
class Fragments:
    """Per-pixel output of :func:`rasterize` for an (H, W) image.

    ``tri_id`` (H, W) int32 triangle index, -1 where no triangle covers the pixel;
    ``depth`` (H, W) float32 camera-frame z, ``inf`` where empty;
    ``bary`` (H, W, 2) float32 perspective-correct weights of corners 0 and 1 (corner 2 is
    ``1 - b0 - b1``).
    """

    tri_id: np.ndarray
    depth: np.ndarray
    bary: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool, True where a triangle covers the pixel."""
        return self.tri_id >= 0


@numba.njit(cache=True, nogil=True)
def _rasterize_kernel(verts, tris, cull, inv_depth, tri_id, bary, id_offset):
    height, width = inv_depth.shape
    for t in range(tris.shape[0]):
        i0, i1, i2 = tris[t, 0], tris[t, 1], tris[t, 2]
        z0, z1, z2 = verts[i0, 2], verts[i1, 2], verts[i2, 2]
        if z0 <= 0.0 or z1 <= 0.0 or z2 <= 0.0:
            continue  # behind the camera (no clipping: such triangles are not drawn)
        x0, y0 = verts[i0, 0], verts[i0, 1]
        x1, y1 = verts[i1, 0], verts[i1, 1]
        x2, y2 = verts[i2, 0], verts[i2, 1]
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if area == 0.0 or (cull and area > 0.0):
            continue
        xmin = max(int(np.ceil(min(x0, min(x1, x2)))), 0)
        xmax = min(int(np.floor(max(x0, max(x1, x2)))), width - 1)
        ymin = max(int(np.ceil(min(y0, min(y1, y2)))), 0)
        ymax = min(int(np.floor(max(y0, max(y1, y2)))), height - 1)
        if xmin > xmax or ymin > ymax:
            continue
        inv_area = 1.0 / area
        w0, w1, w2 = 1.0 / z0, 1.0 / z1, 1.0 / z2
        for py in range(ymin, ymax + 1):
            fy = float(py)
            for px in range(xmin, xmax + 1):
                fx = float(px)
                # Screen-space barycentrics: sub-triangle areas over the whole area.
                e0 = ((x1 - fx) * (y2 - fy) - (x2 - fx) * (y1 - fy)) * inv_area
                e1 = ((x2 - fx) * (y0 - fy) - (x0 - fx) * (y2 - fy)) * inv_area
                e2 = 1.0 - e0 - e1
                if e0 < 0.0 or e1 < 0.0 or e2 < 0.0:
                    continue
                iz = e0 * w0 + e1 * w1 + e2 * w2
                if iz > inv_depth[py, px]:
                    inv_depth[py, px] = iz
                    tri_id[py, px] = t + id_offset
                    bary[py, px, 0] = e0 * w0 / iz
                    bary[py, px, 1] = e1 * w1 / iz


def new_fragments(height: int, width: int) -> Fragments:
    """Empty buffers for :func:`rasterize` (depth ``inf``, ids -1)."""
    return Fragments(
        tri_id=np.full((height, width), -1, dtype=np.int32),
        depth=np.full((height, width), np.inf, dtype=np.float32),
        bary=np.zeros((height, width, 2), dtype=np.float32),
    )


def rasterize(
    verts: np.ndarray,
    tris: np.ndarray,
    height: int,
    width: int,
    cull: bool = True,
    into: Fragments | None = None,
    id_offset: int = 0,
) -> Fragments:
    """Z-buffer rasterisation of triangles.

    ``verts`` (N, 3) screen ``x, y`` in pixels and camera depth ``z`` (> 0); ``tris`` (T, 3)
    int vertex indices. ``cull`` drops back faces (see the module docstring). ``into`` draws
    over existing fragments (several meshes in one z-buffer); ``id_offset`` is added to the
    triangle ids written, so the meshes' triangles can share one id space.
    """
    frags = into if into is not None else new_fragments(height, width)
    inv_depth = np.where(np.isfinite(frags.depth), 1.0 / frags.depth, 0.0).astype(np.float32)
    _rasterize_kernel(
        np.ascontiguousarray(verts, dtype=np.float32),
        np.ascontiguousarray(tris, dtype=np.int32),
        bool(cull),
        inv_depth,
        frags.tri_id,
        frags.bary,
        int(id_offset),
    )
    with np.errstate(divide="ignore"):
        frags.depth[...] = np.where(inv_depth > 0, 1.0 / inv_depth, np.inf)
    return frags


@numba.njit(cache=True, nogil=True)
def _interpolate_kernel(tri_id, bary, tris, attrs, out):
    height, width = tri_id.shape
    n_ch = attrs.shape[1]
    for py in range(height):
        for px in range(width):
            t = tri_id[py, px]
            if t < 0:
                continue
            b0, b1 = bary[py, px, 0], bary[py, px, 1]
            b2 = 1.0 - b0 - b1
            i0, i1, i2 = tris[t, 0], tris[t, 1], tris[t, 2]
            for c in range(n_ch):
                out[py, px, c] = b0 * attrs[i0, c] + b1 * attrs[i1, c] + b2 * attrs[i2, c]


def interpolate(frags: Fragments, tris: np.ndarray, attrs: np.ndarray) -> np.ndarray:
    """Per-pixel attributes (H, W, C) float32 from per-vertex ``attrs`` (N, C); 0 where empty.

    ``tris`` are the triangles whose ids the fragments hold (all meshes, offsets applied).
    """
    attrs = np.ascontiguousarray(attrs, dtype=np.float32)
    out = np.zeros(frags.tri_id.shape + (attrs.shape[1],), dtype=np.float32)
    _interpolate_kernel(frags.tri_id, frags.bary, np.ascontiguousarray(tris, dtype=np.int32), attrs, out)
    return out


@numba.njit(cache=True, nogil=True)
def _shade_kernel(tri_id, bary, tris, attrs, texture, out):
    height, width = tri_id.shape
    tex_h, tex_w = texture.shape[0], texture.shape[1]
    for py in range(height):
        for px in range(width):
            t = tri_id[py, px]
            if t < 0:
                continue
            b0, b1 = bary[py, px, 0], bary[py, px, 1]
            b2 = 1.0 - b0 - b1
            i0, i1, i2 = tris[t, 0], tris[t, 1], tris[t, 2]
            c0 = b0 * attrs[i0, 3] + b1 * attrs[i1, 3] + b2 * attrs[i2, 3]
            c1 = b0 * attrs[i0, 4] + b1 * attrs[i1, 4] + b2 * attrs[i2, 4]
            c2 = b0 * attrs[i0, 5] + b1 * attrs[i1, 5] + b2 * attrs[i2, 5]
            tw = b0 * attrs[i0, 2] + b1 * attrs[i1, 2] + b2 * attrs[i2, 2]
            if tw > 0.0:
                u = b0 * attrs[i0, 0] + b1 * attrs[i1, 0] + b2 * attrs[i2, 0]
                v = b0 * attrs[i0, 1] + b1 * attrs[i1, 1] + b2 * attrs[i2, 1]
                # Bilinear texel fetch; texel centres at (k + 0.5) / size.
                fu = min(max(u * tex_w - 0.5, 0.0), tex_w - 1.0)
                fv = min(max(v * tex_h - 0.5, 0.0), tex_h - 1.0)
                u0, v0 = int(fu), int(fv)
                u1, v1 = min(u0 + 1, tex_w - 1), min(v0 + 1, tex_h - 1)
                du, dv = fu - u0, fv - v0
                w00, w01, w10, w11 = (1 - dv) * (1 - du), (1 - dv) * du, dv * (1 - du), dv * du
                t0 = w00 * texture[v0, u0, 0] + w01 * texture[v0, u1, 0] + w10 * texture[v1, u0, 0] + w11 * texture[v1, u1, 0]
                t1 = w00 * texture[v0, u0, 1] + w01 * texture[v0, u1, 1] + w10 * texture[v1, u0, 1] + w11 * texture[v1, u1, 1]
                t2 = w00 * texture[v0, u0, 2] + w01 * texture[v0, u1, 2] + w10 * texture[v1, u0, 2] + w11 * texture[v1, u1, 2]
                c0 = tw * t0 + (1 - tw) * c0
                c1 = tw * t1 + (1 - tw) * c1
                c2 = tw * t2 + (1 - tw) * c2
            out[py, px, 0] = c0 * (b0 * attrs[i0, 6] + b1 * attrs[i1, 6] + b2 * attrs[i2, 6])
            out[py, px, 1] = c1 * (b0 * attrs[i0, 7] + b1 * attrs[i1, 7] + b2 * attrs[i2, 7])
            out[py, px, 2] = c2 * (b0 * attrs[i0, 8] + b1 * attrs[i1, 8] + b2 * attrs[i2, 8])


def shade(frags: Fragments, tris: np.ndarray, attrs: np.ndarray, texture: np.ndarray) -> np.ndarray:
    """Textured, lit colour image (H, W, 3) float32 (0 where empty).

    ``attrs`` (N, 9) per vertex: ``u, v`` texture coordinates in [0, 1] (u right, v down),
    ``w`` texture weight, ``c0, c1, c2`` vertex colour, ``l0, l1, l2`` light (multiplies).
    ``texture`` (Ht, Wt, 3) is sampled bilinearly. Pixel colour =
    ``(w * texture(u, v) + (1 - w) * c) * l`` per channel.
    """
    attrs = np.ascontiguousarray(attrs, dtype=np.float32)
    if attrs.ndim != 2 or attrs.shape[1] != 9:
        raise ValueError(f"attrs must be (N, 9), got {attrs.shape}")
    texture = np.ascontiguousarray(texture, dtype=np.float32)
    if texture.ndim != 3 or texture.shape[2] != 3:
        raise ValueError(f"texture must be (H, W, 3), got {texture.shape}")
    out = np.zeros(frags.tri_id.shape + (3,), dtype=np.float32)
    _shade_kernel(frags.tri_id, frags.bary, np.ascontiguousarray(tris, dtype=np.int32), attrs, texture, out)
    return out


@numba.njit(cache=True, nogil=True)
def _normals_kernel(verts, tris, out):
    for t in range(tris.shape[0]):
        i0, i1, i2 = tris[t, 0], tris[t, 1], tris[t, 2]
        ax, ay, az = verts[i1, 0] - verts[i0, 0], verts[i1, 1] - verts[i0, 1], verts[i1, 2] - verts[i0, 2]
        bx, by, bz = verts[i2, 0] - verts[i0, 0], verts[i2, 1] - verts[i0, 1], verts[i2, 2] - verts[i0, 2]
        # Area-weighted face normal.
        nx, ny, nz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
        for i in (i0, i1, i2):
            out[i, 0] += nx
            out[i, 1] += ny
            out[i, 2] += nz
    for i in range(out.shape[0]):
        n = np.sqrt(out[i, 0] ** 2 + out[i, 1] ** 2 + out[i, 2] ** 2)
        if n > 0:
            out[i, 0] /= n
            out[i, 1] /= n
            out[i, 2] /= n


def vertex_normals(verts: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Unit vertex normals (N, 3) float32: area-weighted sums of ``(v1 - v0) x (v2 - v0)``.

    Outward for ICT's winding in a right-handed frame (facemtl's head and camera frames);
    zero for vertices used by no triangle.
    """
    out = np.zeros((len(verts), 3), dtype=np.float32)
    _normals_kernel(np.ascontiguousarray(verts, dtype=np.float32), np.ascontiguousarray(tris, dtype=np.int32), out)
    return out


@numba.njit(cache=True, nogil=True, fastmath=True)
def _blend_kernel(base, weights, rows, out):
    out[:] = base
    for k in range(weights.shape[0]):
        w = weights[k]
        if w != 0.0:
            for i in range(out.shape[0]):
                out[i] += w * rows[k, i]


def blend(base: np.ndarray, weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``base + weights @ rows`` for (n,), (k,), (k, n) float32, skipping zero weights.

    A numba loop rather than BLAS: single-threaded and memory-bound, so it never competes
    with the other render workers for cores.
    """
    out = np.empty(base.shape, dtype=np.float32)
    _blend_kernel(np.ascontiguousarray(base, dtype=np.float32), np.ascontiguousarray(weights, dtype=np.float32),
                  np.ascontiguousarray(rows, dtype=np.float32), out)
    return out


@numba.njit(cache=True, nogil=True, fastmath=True)
def _compose_kernel(layers, boxes, colors, out):
    out[:] = 0.0
    for k in range(layers.shape[0]):
        c0, c1, c2 = colors[k, 0], colors[k, 1], colors[k, 2]
        if c0 == 0.0 and c1 == 0.0 and c2 == 0.0:
            continue
        for y in range(boxes[k, 0], boxes[k, 1]):
            for x in range(boxes[k, 2], boxes[k, 3]):
                m = layers[k, y, x]
                out[y, x, 0] += m * c0
                out[y, x, 1] += m * c1
                out[y, x, 2] += m * c2


def layer_boxes(layers: np.ndarray) -> np.ndarray:
    """(L, 4) int32 ``y0, y1, x0, x1`` of each (L, H, W) layer's nonzero texels (empty: 0, 0, 0, 0)."""
    boxes = np.zeros((len(layers), 4), dtype=np.int32)
    for k, layer in enumerate(layers):
        ys, xs = np.nonzero(np.any(layer != 0, 1)), np.nonzero(np.any(layer != 0, 0))
        if len(ys[0]):
            boxes[k] = ys[0][0], ys[0][-1] + 1, xs[0][0], xs[0][-1] + 1
    return boxes


def compose(layers: np.ndarray, boxes: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Texture (H, W, 3) float32 = ``sum_k layers[k] * colors[k]`` over (L, H, W) layers.

    ``boxes`` from :func:`layer_boxes` bound each layer's work; layers with a zero colour are
    skipped.
    """
    out = np.empty(layers.shape[1:] + (3,), dtype=np.float32)
    _compose_kernel(layers, boxes, np.ascontiguousarray(colors, dtype=np.float32), out)
    return out

"""Face profiling (300W-LP style): turn the head of a whole real photo to a new yaw.

Zhu et al. (CVPR 2016, "Face Alignment Across Large Poses: A 3D Solution") made 300W-LP by
fitting a 3D face to a photo, giving the rest of the photo an estimated depth, and rotating
the whole thing, so the new view keeps real hair, ears, neck and background. Here:

* the head is the fitted ICT mesh (:mod:`facemtl.synth.fit`), coloured by the photo's own
  texture (:mod:`facemtl.synth.texture`, whose mirror fill covers the side that comes into
  view);
* everything else is a grid mesh over the photo (one vertex every ``step`` pixels) whose depth
  is the head's depth where the head is and a smooth fill toward the head centre's depth
  elsewhere; each grid point turns with the head by a weight that is 1 on and near the head
  and fades to 0 at about half a face-width from it, so the hair and the neck follow the
  head while the image border stays put;
* both are drawn with one z-buffer (:mod:`facemtl.synth.raster`); the grid takes the photo's
  colours at its original pixels.

The head turns about its own origin (the ICT head centre, between the ears) so its
translation is unchanged; :func:`profile_photo`'s label pose is ``[yaw + delta_yaw, pitch, roll]``
of the fit in the camera frame, in the ``Pose_Para`` convention, and the 68 landmarks are the
model's own landmark vertices projected, with self-occlusion visibility. The turned face moves off
the ray it was seen along, so a crop of it shows another pose: :func:`profile_lfw` (and
``facemtl profile``) label the pose seen along the ray through the face
(:func:`facemtl.geometry.rotations.line_of_sight`), the convention of weak-perspective labels.
"""

from __future__ import annotations

from pathlib import Path
from dataclasses import replace
from typing import Optional

import cv2
import numpy as np

from facemtl.geometry.rotations import (axis_angle_to_matrix, euler_to_matrix, line_of_sight, matrix_to_axis_angle,
                                       matrix_to_euler)
from facemtl.synth import raster
from facemtl.synth.facemodel import PARTS, FaceModel
from facemtl.synth.fit import FitResult
from facemtl.synth.labels import FaceLabels, box_of, expression_class, landmark_visibility
from facemtl.synth.texture import (
    MAX_FIT_ERROR,
    SEAM_BAND,
    PhotoTexture,
    lfw_photo,
    lfw_pool,
    lfw_texture,
    photo_texture,
    push_pull_fill,
    ramp,
)

# Grid points within NEAR face widths of the head turn fully; the weight then fades to 0 over
# FADE face widths, and over BORDER x the image size toward the image border (which stays put).
NEAR = 0.15
FADE = 0.6
BORDER = 0.2
# The head mesh stops this far (mm) below the chin: the lower neck and the shoulders do not
# turn with the head; the grid carries them with a fading weight.
NECK_MM = 25.0
# head_content: how far (mm) the grid is drawn behind the head in the z-buffer (more than a head).
GRID_BEHIND_MM = 1000.0
# head_content: the unlit share of the filled hair and ears' brightness (_content_shading).
HAIR_AMBIENT = 0.45


def profile_photo(
    image: np.ndarray,
    fit: FitResult,
    delta_yaw: float,
    model: Optional[FaceModel] = None,
    texture: Optional[PhotoTexture] = None,
    step: int = 2,
    identity: int = -1,
    delta_pitch: float = 0.0,
    head_content: bool = False,
) -> tuple[np.ndarray, FaceLabels]:
    """The photo with the head turned by ``delta_yaw`` degrees, and the labels of the new face.

    ``delta_pitch`` also tilts it (positive = looking further up); keep it small (the photo
    holds nothing of the underside of the chin or the crown).

    ``head_content``: the back of the skull is drawn too and the head is drawn over the grid, so the
    side of the head that turns into view is the head's (its hair and ear, from a texture made with
    ``photo_texture(..., head_content=True)``), not the photo's unturned background.

    ``image`` BGR uint8 (H, W, 3), ``fit`` its landmark fit; ``texture`` the photo's
    :class:`PhotoTexture` (computed when not given; pass a cached one for speed). Returns the
    image (H, W, 3) uint8 and :class:`facemtl.synth.labels.FaceLabels` (camera = the fit's).
    """
    model = model or FaceModel.load()
    if texture is None:
        texture = photo_texture(image, fit, model)
    h, w = image.shape[:2]
    K = fit.camera_matrix()
    t = np.asarray(fit.translation, dtype=np.float64)
    pose = fit.pose + np.array([delta_yaw, delta_pitch, 0.0])
    R_new = euler_to_matrix(pose)
    turn = R_new @ fit.rotation.T  # camera-frame rotation about the head origin t

    rm = model.render_mesh()
    head = fit.vertices(model, index=rm.vertex_index).astype(np.float64)
    chin = model.landmarks_3d(fit.identity, fit.expression)[8, 1]
    skull = model.part_mask("head_neck")[rm.vertex_index]
    above_neck = (head[rm.triangles, 1] < chin + NECK_MM).any(1)
    tris = rm.triangles[above_neck if head_content else above_neck & ~skull[rm.triangles].all(1)]
    grid_px, moved, grid_tris = _turned_grid(head, tris, rm.vertex_index, model, fit, turn, step, (h, w))

    # Head mesh at the new pose (drawn first: its z-buffer alone gives self-occlusion).
    new = head @ R_new.T + t
    new_px = _project(new, K)
    frags = raster.rasterize(np.c_[new_px, new[:, 2]], tris, h, w)
    head_depth = frags.depth.copy()
    n_head = len(tris)
    # head_content: the grid's z-buffer values are pushed back (not its geometry), so the head wins
    # wherever both are drawn and the grid keeps its own order.
    behind = GRID_BEHIND_MM if head_content else 0.0
    raster.rasterize(np.c_[_project(moved, K), moved[:, 2] + behind], grid_tris, h, w, cull=False, into=frags,
                     id_offset=n_head)

    # Colour: the grid samples the photo at its original pixels, the head its texture atlas.
    A = texture.texture.shape[0]
    shade = _content_shading(model, new, rm.triangles, rm.vertex_index) if head_content else np.ones(len(new))
    attrs = np.concatenate([np.c_[rm.uv * A - 0.5, shade], np.c_[grid_px, np.ones(len(grid_px))]])
    src = raster.interpolate(frags, np.concatenate([tris, grid_tris + len(rm.uv)]), attrs.astype(np.float32))
    from_head = (frags.tri_id >= 0) & (frags.tri_id < n_head)
    photo = cv2.remap(image, src[..., 0], src[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    tex = cv2.remap(texture.texture, src[..., 0], src[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if head_content:  # the filled texels (the photo's own carry its light) take the new view's shading
        filled = cv2.remap(ramp(texture.seen == 0, SEAM_BAND * A), src[..., 0], src[..., 1], cv2.INTER_LINEAR)
        tex = np.clip(tex * (1 + filled[..., None] * (src[..., 2:3] - 1)), 0, 255).astype(np.uint8)
    out = np.where(from_head[..., None], tex, photo)

    labels = _turned_labels(model, fit, pose, R_new, head_depth, identity, texture.source, (delta_yaw, delta_pitch))
    return out, labels


def _turned_grid(head: np.ndarray, tris: np.ndarray, vertex_index: np.ndarray, model: FaceModel, fit: FitResult,
                 turn: np.ndarray, step: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The photo as a grid mesh of ``step`` px cells turned with the head: ``(pixels (N, 2) it samples,
    camera points (N, 3) after the turn, triangles (T, 3) int32)``.

    Its depth is the fitted head's (``head`` (V, 3) head-frame vertices of the render mesh, drawn with
    ``tris``) where the head is, filled smoothly toward the head centre's depth elsewhere; each point
    turns by ``turn`` (camera-frame, about the head origin) times a weight that fades from 1 near the
    face to 0 far from it and at the image border.
    """
    h, w = shape
    K, t = fit.camera_matrix(), np.asarray(fit.translation, dtype=np.float64)
    # The photo's depth where the head is.
    old = head @ fit.rotation.T + t
    old_px = _project(old, K)
    depth_old = raster.rasterize(np.c_[old_px, old[:, 2]], tris, h, w).depth
    on_head = np.isfinite(depth_old)

    # Grid over the photo: depth filled smoothly from the head toward the head centre's depth.
    gx, gy = np.meshgrid(np.r_[np.arange(0, w - 1, step), w - 1], np.r_[np.arange(0, h - 1, step), h - 1])
    # Off the head, depth comes from the head's silhouette (cheeks, ears, skull: near the
    # head centre's depth), not from its front: the face surface would drag the hair and the
    # background sideways as far as the nose moves.
    rim = on_head & ~cv2.erode(on_head.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    known = rim.copy()
    known[[0, -1], :] = known[:, [0, -1]] = True
    depth = np.where(rim, depth_old, t[2]).astype(np.float32)
    depth = np.where(on_head, depth_old, push_pull_fill(depth[..., None], known)[..., 0])
    gd = depth[gy, gx].astype(np.float64)
    # Grid points on the head lie just behind the mesh, which draws the head itself.
    gd = gd + 5.0 * on_head[gy, gx]
    pts = np.stack([(gx - K[0, 2]) / K[0, 0] * gd, (gy - K[1, 2]) / K[1, 1] * gd, gd], -1).reshape(-1, 3)
    face_w = np.ptp(old_px[np.isin(vertex_index, model.landmark_index)][:, 0]) + 1e-6
    dist = cv2.distanceTransform((~on_head).astype(np.uint8), cv2.DIST_L2, 5)
    yy, xx = np.mgrid[0:h, 0:w]
    to_border = np.minimum(np.minimum(xx, w - 1 - xx), np.minimum(yy, h - 1 - yy)) / (BORDER * min(h, w))
    weight = np.clip(np.minimum(1 - (dist / face_w - NEAR) / FADE, to_border), 0, 1)
    weight = weight * weight * (3 - 2 * weight)  # smoothstep
    a = matrix_to_axis_angle(turn)
    Rw = axis_angle_to_matrix(weight[gy, gx].reshape(-1, 1) * a)
    moved = np.einsum("nij,nj->ni", Rw, pts - t) + t
    nx = gx.shape[1]
    cell = (np.arange(gx.shape[0] - 1)[:, None] * nx + np.arange(nx - 1)[None, :]).ravel()
    grid_tris = np.concatenate([np.c_[cell, cell + nx, cell + 1], np.c_[cell + 1, cell + nx, cell + nx + 1]])
    grid_tris = grid_tris.astype(np.int32)
    return np.c_[gx.ravel(), gy.ravel()], moved, grid_tris


def _turned_labels(model: FaceModel, fit: FitResult, pose: np.ndarray, R_new: np.ndarray, head_depth: np.ndarray,
                   identity: int, source: str, delta: tuple[float, float]) -> FaceLabels:
    """The labels of the turned face: pose ``pose`` / ``R_new``, its landmarks projected with the fit's
    camera, visible where ``head_depth`` (the turned head's z-buffer) does not hide them."""
    K, t = fit.camera_matrix(), np.asarray(fit.translation, dtype=np.float64)
    lm3d = model.landmarks_3d(fit.identity, fit.expression).astype(np.float64) @ R_new.T + t
    lm2d = _project(lm3d, K)
    vis = landmark_visibility(lm2d, lm3d[:, 2], head_depth, tolerance_mm=3.0)
    face = model.vertices(fit.identity, fit.expression, index=np.arange(*PARTS["face_narrow"])[::4]) @ R_new.T + t
    return FaceLabels(
        pose=pose,
        rotation=R_new,
        translation=t.copy(),
        camera=K,
        landmarks=lm2d,
        landmarks_3d=lm3d,
        visibility=vis,
        box=box_of(lm2d),
        face_box=box_of(np.concatenate([lm2d, _project(face, K)])),
        expr_weights=np.asarray(fit.expression, dtype=np.float64),
        expr_class=int(expression_class(np.asarray(fit.expression), model.expr_names)),
        identity=identity,
        meta={"source": source, "delta": (float(delta[0]), float(delta[1])), "fit_pose": fit.pose},
    )


def _content_shading(model: FaceModel, cam: np.ndarray, tris: np.ndarray, vertex_index: np.ndarray) -> np.ndarray:
    """Per-vertex brightness factor of the hair and ears at camera-frame positions ``cam``: a light
    from the camera, HAIR_AMBIENT + (1 - HAIR_AMBIENT) x the cosine of normal and view (1 elsewhere),
    so an ear filled with flat skin shows its folds and the hair darkens toward the silhouette."""
    normals = raster.vertex_normals(cam.astype(np.float32), tris).astype(np.float64)
    facing = np.clip(np.sum(normals * -cam / np.linalg.norm(cam, axis=1, keepdims=True), axis=1), 0, 1)
    hair, ear = (mask[vertex_index] for mask in model.hair_and_ears())
    return np.where(hair | ear, HAIR_AMBIENT + (1 - HAIR_AMBIENT) * facing, 1.0)


def _project(xc: np.ndarray, K: np.ndarray) -> np.ndarray:
    return xc[:, :2] / xc[:, 2:3] * K[[0, 1], [0, 1]] + K[:2, 2]


def profile_lfw(
    lfw_dir: str | Path,
    rel_path: str,
    delta_yaw: float,
    delta_pitch: float = 0.0,
    size: int = 256,
    cache_dir: Optional[str | Path] = None,
) -> tuple[np.ndarray, FaceLabels]:
    """:func:`profile_photo` of one LFW photo, with its cached fit and texture; the pose label is
    the one seen along the ray through the turned face (the module docstring).

    The label's ``identity`` is ``-1 - k`` for the photo's row ``k`` of the landmark asset
    (negative: real people, apart from the synthetic identities).
    """
    image, _, k = lfw_photo(lfw_dir, rel_path)
    tex = lfw_texture(lfw_dir, rel_path, size, cache_dir)
    out, labels = profile_photo(image, tex.fit, delta_yaw, texture=tex, identity=-1 - k, delta_pitch=delta_pitch)
    return out, seen_along_the_ray(labels)


def seen_along_the_ray(labels: FaceLabels, rotation: Optional[np.ndarray] = None) -> FaceLabels:
    """``labels`` with the pose seen along the ray through the face (the centroid of its 68
    camera-frame landmarks): ``line_of_sight(centroid).T @ rotation``, the camera-frame ``rotation``
    defaulting to the labels' own. What a crop of the face shows (the module docstring)."""
    R = line_of_sight(labels.landmarks_3d.mean(0)).T @ (labels.rotation if rotation is None else rotation)
    return replace(labels, rotation=R, pose=matrix_to_euler(R))


def sample_profile(
    rng: np.random.Generator,
    lfw_dir: str | Path,
    size: int = 128,
    yaw_range: tuple[float, float] = (-90.0, 90.0),
    pitch_sd: float = 0.0,
    cache_dir: Optional[str | Path] = None,
) -> tuple[np.ndarray, FaceLabels]:
    """A random profiled LFW photo at ``size`` x ``size``: target yaw uniform in ``yaw_range``.

    The photo is drawn from the texture pool (:func:`facemtl.synth.texture.lfw_pool`, fits
    under ``MAX_FIT_ERROR`` only); the head turns from its fitted yaw to the target and tilts
    by N(0, ``pitch_sd``) degrees. Deterministic given ``rng`` (and the cached fits).
    """
    pool = lfw_pool()
    while True:
        rel = pool[int(rng.integers(len(pool)))]
        tex = lfw_texture(lfw_dir, rel, cache_dir=cache_dir)
        if tex.reprojection_error <= MAX_FIT_ERROR:
            break
    target = rng.uniform(*yaw_range)
    image, labels = profile_lfw(lfw_dir, rel, target - tex.pose[0], rng.normal(0.0, pitch_sd) if pitch_sd else 0.0,
                                cache_dir=cache_dir)
    return resize_sample(image, labels, size)


def resize_sample(image: np.ndarray, labels: FaceLabels, size: int) -> tuple[np.ndarray, FaceLabels]:
    """Resize a square image to ``size`` and its 2D labels with it (integer pixel centres)."""
    s = size / image.shape[1]
    S = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1.0]])

    def pix(p: np.ndarray) -> np.ndarray:
        return (np.asarray(p, dtype=np.float64) + 0.5) * s - 0.5

    out = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    labels = replace(labels, camera=S @ labels.camera, landmarks=pix(labels.landmarks), box=pix(labels.box),
                     face_box=pix(labels.face_box))
    return out, labels

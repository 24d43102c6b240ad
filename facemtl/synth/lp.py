"""A 300W-LP of our own: real photos with manual 68 landmarks, turned in yaw and pitch.

Zhu et al. made 300W-LP by fitting the BFM to the 300-W photos' manual landmarks and turning each
photo in 3D (face profiling). Here, for each photo:

* **pose label**: the BFM fitted to all 68 manual points (:mod:`facemtl.synth.bfm`), which puts
  the label in the ``Pose_Para`` frame with no offset from the head model; with
  ``jaw_marching`` the fit slides the jaw to the cheek silhouette as the annotators drew it
  (:class:`~facemtl.synth.bfm.ContourMarch`; the shipped model's last stage was trained with it);
* **the turned image**: the ICT head fitted to the same points (with contour marching,
  :mod:`facemtl.synth.fit`) and :func:`facemtl.synth.profile.profile_photo` (with ``head_content``
  the side of the head that turns into view has hair and an ear of its own). A view's label is
  the BFM rotation turned by the turn the image shows: the head turns about its origin, behind the
  face, so the face moves off the ray it was seen along; the label is the turn seen along the new
  ray (:func:`facemtl.geometry.rotations.line_of_sight`, docs/MODEL_CARD.md, "Labels along the line
  of sight");
* **landmarks in the annotators' definition** (300-W: the jaw follows the visible outline): each
  point is its fitted ICT vertex at the new pose plus the annotator's offset from it in the
  photo; the jaw's sliding points move to the new silhouette (:func:`slide_contour`), so the
  jaw stays the visible outline. Visibility: inner points by the z-buffer of the turned head,
  outline points visible. No expression class (``expr_class`` -1): a photo's fitted expression
  weights are not a reliable label.

View 0 of each photo is the photo itself with its manual landmarks.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Collection, Optional

import cv2
import numpy as np

from facemtl.data.sample import Sample
from facemtl.geometry.rotations import line_of_sight
from facemtl.synth.bfm import BFM68, ContourMarch, fit_bfm
from facemtl.synth.facemodel import FaceModel
from facemtl.synth.fit import SLIDING, contour_candidates, fit_landmarks, slide_contour
from facemtl.synth.labels import FaceLabels, box_of
from facemtl.synth.profile import profile_photo, seen_along_the_ray
from facemtl.synth.texture import photo_texture

# Target yaw of a turned view, uniform in +-YAW and at most MAX_TURN from the photo's own (a turn
# further than that shows mostly the texture's mirror fill); the tilt is uniform in +-PITCH (the
# photo holds nothing of the underside of the chin or the crown, so it stays moderate).
YAW = 90.0
MAX_TURN = 75.0
PITCH = 25.0
# Photos whose ICT fit is worse than this (mean px at SIZE) are kept unturned only.
MAX_FIT_ERROR = 4.0
# The ways a folder's views can be made (profile_views' flags): one folder, one way (profile.json).
STYLES = ("jaw_marching", "soft_seams", "head_content")


def resized_photo(sample: Sample, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The sample's image scaled to ``size`` px on its long side, and its landmarks scaled with it."""
    image = sample.load_image()
    s = size / max(image.shape[:2])
    image = cv2.resize(image, (round(image.shape[1] * s), round(image.shape[0] * s)), interpolation=cv2.INTER_AREA)
    return image, (np.asarray(sample.landmarks, dtype=np.float64) + 0.5) * s - 0.5


def profile_views(sample: Sample, rng: np.random.Generator, views: int, size: int, ict: FaceModel,
                  bfm: BFM68, candidates: Optional[list[np.ndarray]] = None,
                  skip: Collection[int] = (), jaw_marching: bool = False,
                  soft_seams: bool = False, head_content: bool = False) -> dict[int, tuple[np.ndarray, FaceLabels]]:
    """The photo (view 0) and ``views`` turned copies, each with its labels (see the module docstring),
    by view number.

    ``sample`` needs an image and 68 landmarks; the image is scaled to ``size`` px on its long side.
    The views in ``skip`` are drawn from ``rng`` but not made, so the others are the same views as
    when all are made (how a set is extended to more views). A photo whose fit fails
    ``MAX_FIT_ERROR`` has view 0 only. ``jaw_marching``: the pose label's BFM fit slides the jaw
    (:class:`~facemtl.synth.bfm.ContourMarch`); the images and landmarks are the same either way.
    ``soft_seams``: the photo's texture blends its seen, mirrored and filled skin
    (:func:`facemtl.synth.texture.blend_seams`); ``head_content``: the turned head shows a side of
    its own, hair and an ear (:func:`facemtl.synth.profile.profile_photo`); the labels are the same
    either way.
    """
    image, q = resized_photo(sample, size)
    h, w = image.shape[:2]
    labelled = np.isfinite(q).all(1)
    candidates = candidates if candidates is not None else contour_candidates(ict)
    bfit = fit_bfm(q, bfm, contour=ContourMarch(ict, candidates) if jaw_marching else None)
    fit = fit_landmarks(q, (w, h), ict)
    texture = photo_texture(image, fit, ict, soft_seams=soft_seams, head_content=head_content)
    K, t = fit.camera_matrix(), fit.translation
    offset = np.where(labelled[:, None], q - fit.project(fit.vertices(ict, index=fit.landmark_vertex)), 0.0)
    # The BFM fit is weak-perspective: its rotation is the pose seen along the ray through the face.
    # The head turns about its own origin, well behind the face, so the turned face moves off that
    # ray and a crop of it shows the turn plus the ray's angle (about 4 deg more at 60 deg of turn).
    seen_from = line_of_sight(fit.to_camera(fit.vertices(ict, index=ict.landmark_index)).mean(0))

    def view(d_yaw: float, d_pitch: float) -> tuple[np.ndarray, FaceLabels]:
        turned, lab = profile_photo(image, fit, d_yaw, ict, texture, delta_pitch=d_pitch, head_content=head_content)
        seen = seen_along_the_ray(lab, lab.rotation @ fit.rotation.T @ seen_from @ bfit.rotation)
        vertex = slide_contour(ict, lab.rotation, fit.identity, fit.expression, candidates)
        cam = fit.vertices(ict, index=vertex) @ lab.rotation.T + t
        pts = cam[:, :2] / cam[:, 2:3] * K[[0, 1], [0, 1]] + K[:2, 2] + offset
        vis = lab.visibility.astype(np.float64)
        vis[SLIDING] = 1.0
        return turned, replace(seen, landmarks=pts, landmarks_3d=cam,
                               visibility=vis, box=box_of(pts), identity=-1, expr_class=-1,
                               meta={"source": sample.image_path, "fit_error_px": fit.reprojection_error,
                                     "bfm_error_px": float(np.nanmean(bfit.errors))})

    out = {}
    if 0 not in skip:
        _, lab0 = view(0.0, 0.0)
        # The photo itself: its manual points, exactly.
        out[0] = (image, replace(lab0, landmarks=np.where(labelled[:, None], q, np.nan), box=box_of(q[labelled])))
    if fit.reprojection_error > MAX_FIT_ERROR:
        return out
    yaw0 = fit.pose[0]
    for v in range(1, views + 1):
        target_yaw = rng.uniform(max(-YAW, yaw0 - MAX_TURN), min(YAW, yaw0 + MAX_TURN))
        d_pitch = rng.uniform(-PITCH, PITCH)
        if v not in skip:
            out[v] = view(target_yaw - yaw0, d_pitch)
    return out


# ---- the command: ``facemtl profile`` -------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("folders", nargs="+", help="300-W-style folders (.pts + image), e.g. ../shared/data/300w/afw")
    parser.add_argument("--out", required=True, help="output folder: train/ and val/ of PPPPP_VV.jpg + .mat (photo PPPPP, view VV; view 00 is the photo itself)")
    parser.add_argument("--views", type=int, default=6,
                        help="turned views per photo besides the photo (default 6); more views on a folder "
                             "written with fewer add the views that are missing (the same views a fresh run makes)")
    parser.add_argument("--size", type=int, default=192, help="long side of the written images (default 192)")
    parser.add_argument("--holdout", default="helen-train:100",
                        help="FOLDER_NAME:N: N faces of that folder go to val/ (never train on them; default "
                             "helen-train:100, the 300-W validation split)")
    parser.add_argument("--bfm", default=None, help="the BFM folder (default: FACEMTL_SHARED or ../shared, "
                                                    "facemodels/bfm)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the views (default 0)")
    parser.add_argument("--workers", type=int, default=0, help="processes (default: one per CPU core)")
    parser.add_argument("--jaw-marching", action="store_true",
                        help="pose labels from the BFM fit with the jaw slid to the cheek silhouette (the "
                             "annotators' jaw; docs/MODEL_CARD.md, \"Jaw marching in the labels\"); default: "
                             "the BFM's fixed jaw vertices, as the shipped model's stages 1-7")
    parser.add_argument("--soft-seams", action="store_true",
                        help="the turned face's skin that the photo does not show takes the shading of what it "
                             "shows and blends into it, instead of meeting it at a hard, ragged edge "
                             "(docs/MODEL_CARD.md); default: hard edges, as the shipped model's stages 1-7")
    parser.add_argument("--head-content", action="store_true",
                        help="the side and back of the turned head show hair and an ear of the head's own "
                             "instead of the photo's unturned background (docs/MODEL_CARD.md); default: as "
                             "the shipped model's stages 1-8")


def run(args) -> int:
    import json
    import multiprocessing as mp
    from contextlib import nullcontext
    import os
    import sys
    import time
    from pathlib import Path

    from facemtl.data.registry import load_dataset

    from facemtl.io import shared_dir, write_atomic

    bfm_dir = Path(args.bfm) if args.bfm else shared_dir() / "facemodels" / "bfm"
    # Checked before the photos are read: a folder's views are all made one way.
    out = Path(args.out)
    made_with = json.loads((out / "profile.json").read_text()) if (out / "profile.json").is_file() else {}
    styles = {key: getattr(args, key) for key in STYLES}
    for key in STYLES:
        if made_with.get(key, False) != styles[key] and any(out.glob("*/*.mat")):
            flag = "--" + key.replace("_", "-")
            print(f"facemtl profile: {out}: its views were made {'with' if made_with.get(key) else 'without'} "
                  f"{flag}; extend it the same way or write a new folder", file=sys.stderr)
            return 2
    hold_name, _, hold_n = args.holdout.partition(":")
    jobs = []  # (part, sample)
    for folder in args.folders:
        if not Path(folder).is_dir():
            print(f"facemtl profile: {folder}: folder not found", file=sys.stderr)
            return 2
        samples = [s for s in load_dataset("300w", folder) if s.landmarks is not None]
        if Path(folder).name == hold_name:
            val = load_dataset("300w", folder, holdout="val", holdout_n=int(hold_n or 100))
            keep = {s.image_path for s in val}
            jobs += [("val" if s.image_path in keep else "train", s) for s in samples]
        else:
            jobs += [("train", s) for s in samples]
    for part in ("train", "val"):
        (out / part).mkdir(parents=True, exist_ok=True)
    # A new file, not written into the old one: a copy made with hard links keeps its own.
    write_atomic(out / "profile.json", json.dumps({k: v for k, v in vars(args).items() if not k.startswith("_")},
                                                  indent=1).encode())
    # A re-run makes only the views that are missing (view 0 is written last, so a photo with
    # view 0 and no view 1 had its fit fail). val/ first: a run stopped early can already be
    # evaluated on it.
    task = []
    for i, (part, s) in enumerate(jobs):
        have = {v for v in range(args.views + 1) if (out / part / f"{i:05d}_{v:02d}.mat").is_file()}
        if 0 in have and (1 not in have or len(have) == args.views + 1):
            continue
        task.append((str(out), str(bfm_dir), args.seed, args.views, args.size, i, part, s, have, styles))
    task.sort(key=lambda t: t[6] != "val")
    start, written, failed = time.perf_counter(), 0, 0
    workers = args.workers or os.cpu_count() or 1
    # One worker runs in this process: forking a process that already runs threads (a caller's
    # torch or OpenCV pool, a test runner) can deadlock the child.
    with mp.get_context("fork").Pool(workers) if workers > 1 else nullcontext() as pool:
        results = pool.imap_unordered(_profile_job, task, chunksize=4) if pool else map(_profile_job, task)
        for n, problem in results:
            written += n
            if problem:
                failed += 1
                print(f"facemtl profile: {problem}", file=sys.stderr)
    print(f"{out}: {len(task)} photos ({len(jobs) - len(task)} complete before) -> {written} images in "
          f"{time.perf_counter() - start:.0f} s, {failed} failed")
    return 0


_MODELS: dict = {}


def _profile_job(task) -> tuple[int, str]:
    from pathlib import Path

    from facemtl.synth.writer import write_face

    out, bfm_dir, seed, views, size, index, part, sample, have, styles = task
    cv2.setNumThreads(1)
    if not _MODELS:
        _MODELS["ict"] = FaceModel.load()
        _MODELS["bfm"] = BFM68.load(bfm_dir)
        _MODELS["candidates"] = contour_candidates(_MODELS["ict"])
    try:
        faces = profile_views(sample, np.random.default_rng((seed, index)), views, size, _MODELS["ict"],
                              _MODELS["bfm"], _MODELS["candidates"], skip=have, **styles)
    except (ValueError, OSError, np.linalg.LinAlgError) as e:
        return 0, f"{sample.image_path}: {e}"
    for v in sorted(faces, reverse=True):
        write_face(Path(out) / part, f"{index:05d}_{v:02d}", *faces[v])
    return len(faces), ""

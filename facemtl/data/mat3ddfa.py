"""3DDFA-style ``.mat`` annotations: 300W-LP, AFLW2000-3D and facemtl's synthetic faces and scenes.

One ``.mat`` per image, the image beside it with the same stem (``.jpg`` or ``.png``).

Keys read
    ``Pose_Para`` (1x7): pitch, yaw, roll (radians), tx, ty, tz, scale. ``pose`` is
    ``[yaw, pitch, roll]`` in degrees (:func:`facemtl.geometry.rotations.pose_para_to_ypr`),
    raw: not wrapped and not filtered (AFLW2000 has a few |angle| > 99 deg that evaluation
    protocols drop themselves). The full vector stays in ``meta["pose_para"]``.

Pixel convention
    300W-LP and AFLW2000-3D were written by 3DDFA's MATLAB code, which works in 1-based pixel
    coordinates: its projection flips y as ``height + 1 - y``, and the AFLW2000 ``pt2d``
    points that AFLW left unannotated are stored as ``(-1, 452)``, i.e. ``(-1, -1)`` passed
    through that flip on the 450-pixel images. Drawing the points on the real images cannot
    settle one pixel (the fitted ``pt3d_68`` eye and mouth corners sit 1-3 px off the visible
    corners either way), so the readers follow the writing code and subtract 1 from x and y
    (``landmarks``, ``landmarks_3d[:, :2]``, ``raw_landmarks``). The synthetic format is
    0-based already.

Boxes
    ``box`` is the tight box of the 68 landmarks (Hopenet crops around the ``pt2d``
    min/max with a margin; evaluation adds its own margin). For synthetic faces it is ``roi``
    when present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facemtl.contract import EXPRESSIONS, landmark_box
from facemtl.data._common import find_image, load_mat, mat_array, mat_scalar, read_each, require
from facemtl.data.sample import Sample
from facemtl.geometry.rotations import pose_para_to_ypr
from facemtl.io import FileError

# 300W-LP release folders whose .mat files are not per-image annotations.
_SKIP_FOLDERS = {"landmarks", "Code"}


def read_300w_lp(root: str | Path, skip_errors: bool = False) -> list[Sample]:
    """300W-LP: ``root`` is a folder (searched recursively) or one ``.mat`` file.

    Reads ``Pose_Para`` and ``pt2d`` (2x68, iBUG-68 order) into ``pose``, ``landmarks`` and
    ``box``. The release's ``landmarks/`` (``*_pts.mat``) and ``Code/`` folders hold no image
    annotations and are skipped. ``skip_errors``: log and skip malformed files instead of raising.
    """
    return read_each(_mat_files(root), _read_300w_lp_one, skip_errors)


def read_aflw2000(root: str | Path, skip_errors: bool = False) -> list[Sample]:
    """AFLW2000-3D: ``root`` is a folder (searched recursively) or one ``.mat`` file.

    ``landmarks`` = ``pt3d_68[:2].T`` and ``landmarks_3d`` = ``pt3d_68.T`` (z as stored:
    3DDFA's model depth in image-pixel scale, larger toward the camera). ``raw_landmarks`` is
    ``pt2d`` (2x21, the AFLW points, order of :data:`facemtl.data.aflw.AFLW21_NAMES`) with the
    unannotated ones (x = -1) set to NaN. ``skip_errors``: log and skip malformed files.
    """
    return read_each(_mat_files(root), _read_aflw2000_one, skip_errors)


def read_synth(root: str | Path, skip_errors: bool = False, max_view: int | None = None) -> list[Sample]:
    """facemtl synthetic faces: ``root`` is a folder (searched recursively) or one ``.mat`` file.

    Required keys: ``Pose_Para`` (1x7) and ``pt2d_68`` (2x68, 0-based pixels). Optional:
    ``pt3d_68`` (3x68) -> ``landmarks_3d``; ``visible_68`` (1x68) -> ``visibility``;
    ``roi`` (1x4 ``x1, y1, x2, y2``) -> ``box``; ``expr_weights`` (1x53, ICT blendshape
    weights) -> ``meta["expr_weights"]``; ``expr_class`` (index or name in
    :data:`EXPRESSIONS`, -1 for none) -> ``expression``; ``identity`` -> ``meta["identity"]``.
    ``skip_errors``: log and skip malformed files. ``max_view``: of ``facemtl profile`` output
    (files ``PPPPP_VV``, view ``VV`` of photo ``PPPPP``), only views ``0..max_view``; a profiled
    set read with ``max_view=N`` is the set ``--views N`` writes with the same seed (each photo's
    views are drawn in order from its own generator).
    """
    files = _mat_files(root)
    if max_view is not None:
        files = [p for p in files if _view(p) <= max_view]
    return read_each(files, _read_synth_one, skip_errors)


def _view(path: Path) -> int:
    """The view number of a ``facemtl profile`` file ``PPPPP_VV.mat``."""
    photo, _, view = path.stem.rpartition("_")
    if not (photo.isdigit() and view.isdigit()):
        raise FileError(path, "not a facemtl profile file name (PPPPP_VV.mat); max_view applies to those only")
    return int(view)


def read_synth_scenes(root: str | Path, skip_errors: bool = False) -> list[Sample]:
    """facemtl synthetic scenes (``facemtl synth --scene``), one sample per image, for detection.

    ``root`` is a folder (searched recursively) or one ``.mat`` file. A scene file holds the
    keys of :func:`read_synth` with a leading face axis (``Pose_Para`` Nx7, ``pt2d_68``
    Nx2x68, ...) plus ``n_faces``; a file without ``n_faces`` (one face per image: the default
    and ``--profile`` output) reads as a scene of one face.

    ``boxes`` (N, 4) ``x1, y1, x2, y2`` is ``face_box`` (the face surface, forehead to chin
    and cheek to cheek, as WIDER FACE boxes faces; it contains the 68 landmarks), or the
    landmarks' box where a file has none. ``box``, ``pose`` and ``landmarks`` stay ``None``
    (an image has no single face); the per-face labels, in the order of ``boxes``, are in
    ``meta``: ``pose`` (N, 3) yaw, pitch, roll degrees; ``pose_para`` (N, 7);
    ``landmarks`` (N, 68, 2) 0-based pixels; ``landmark_boxes`` (N, 4) their tight boxes
    (``roi``); ``landmarks_3d`` (N, 68, 3), ``visibility`` (N, 68), ``expression`` (N,) int
    (-1: none), ``expr_weights`` (N, 53), ``identity`` (N,) int when the file has them.
    Boxes are not clipped to the image, and faces hidden behind nearer heads or bodies keep
    theirs: ``visibility`` says how much of each face is seen (a detector should ignore the
    faces it marks as hardly seen, as WIDER FACE's ``invalid``).
    ``skip_errors``: log and skip malformed files.
    """
    return read_each(_mat_files(root), _read_scene_one, skip_errors)


def _mat_files(root: str | Path) -> list[Path]:
    root = require(Path(root), "dataset root")
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*.mat") if not _SKIP_FOLDERS & set(p.relative_to(root).parts[:-1]))


def _pose(mat: dict, path: Path) -> tuple[np.ndarray, np.ndarray]:
    pose_para = mat_array(mat, "Pose_Para", path, (1, 7))[0]
    if not np.all(np.isfinite(pose_para)):
        raise FileError(path, f"'Pose_Para' has non-finite values {pose_para.tolist()}")
    return pose_para_to_ypr(pose_para), pose_para


def _read_300w_lp_one(path: Path) -> Sample:
    mat = load_mat(path)
    pose, pose_para = _pose(mat, path)
    landmarks = mat_array(mat, "pt2d", path, (2, 68)).T - 1.0
    return Sample(source="300w-lp", image_path=str(find_image(path)), box=landmark_box(landmarks), pose=pose,
                  landmarks=landmarks, meta={"pose_para": pose_para})


def _read_aflw2000_one(path: Path) -> Sample:
    mat = load_mat(path)
    pose, pose_para = _pose(mat, path)
    pt3d = mat_array(mat, "pt3d_68", path, (3, 68)).T
    pt3d[:, :2] -= 1.0
    raw = mat_array(mat, "pt2d", path, (2, 21)).T
    raw[raw[:, 0] == -1] = np.nan  # AFLW points that were not annotated
    landmarks = pt3d[:, :2].copy()
    return Sample(source="aflw2000", image_path=str(find_image(path)), box=landmark_box(landmarks), pose=pose,
                  landmarks=landmarks, landmarks_3d=pt3d, raw_landmarks=raw - 1.0, meta={"pose_para": pose_para})


def _read_synth_one(path: Path) -> Sample:
    mat = load_mat(path)
    if "n_faces" in mat:
        raise FileError(path, "a scene file (several faces, 'n_faces'): read it with read_synth_scenes "
                                 "(dataset 'synth-scenes')")
    pose, pose_para = _pose(mat, path)
    landmarks = mat_array(mat, "pt2d_68", path, (2, 68)).T
    sample = Sample(source="synth", image_path=str(find_image(path)), pose=pose, landmarks=landmarks,
                    box=landmark_box(landmarks), meta={"pose_para": pose_para})
    if "pt3d_68" in mat:
        sample.landmarks_3d = mat_array(mat, "pt3d_68", path, (3, 68)).T
    if "visible_68" in mat:
        sample.visibility = mat_array(mat, "visible_68", path, (1, 68))[0]
    if "roi" in mat:
        sample.box = mat_array(mat, "roi", path, (1, 4))[0]
    if "expr_weights" in mat:
        sample.meta["expr_weights"] = mat_array(mat, "expr_weights", path, (1, 53))[0]
    if "expr_class" in mat:
        sample.expression = _expression(mat_scalar(mat, "expr_class", path), path)
    if "identity" in mat:
        identity = np.asarray(mat["identity"]).squeeze()  # an id number, a name or coefficients
        sample.meta["identity"] = identity.item() if identity.size == 1 else identity
    return sample


# Per-face shapes of the scene keys read as floats (the face axis comes first).
_SCENE_KEYS = {"Pose_Para": (7,), "pt2d_68": (2, 68), "pt3d_68": (3, 68), "visible_68": (68,), "roi": (4,),
               "face_box": (4,), "expr_class": (), "expr_weights": (53,), "identity": ()}


def _read_scene_one(path: Path) -> Sample:
    mat = load_mat(path)
    n = int(mat_scalar(mat, "n_faces", path)) if "n_faces" in mat else 1
    if n < 1:
        raise FileError(path, f"'n_faces' is {n}, expected >= 1")

    def faces(key: str) -> np.ndarray:
        value = mat_array(mat, key, path)
        shape = (n,) + _SCENE_KEYS[key]
        if value.size != np.prod(shape):  # also catches an n_faces that disagrees with the arrays
            raise FileError(path, f"{key!r} has shape {value.shape}, expected {n} faces of {_SCENE_KEYS[key]}")
        return value.reshape(shape)

    pose_para = faces("Pose_Para")
    if not np.all(np.isfinite(pose_para)):
        raise FileError(path, "'Pose_Para' has non-finite values")
    landmarks = faces("pt2d_68").transpose(0, 2, 1)
    roi = faces("roi") if "roi" in mat else np.concatenate([landmarks.min(1), landmarks.max(1)], axis=1)
    meta = {"pose": pose_para_to_ypr(pose_para), "pose_para": pose_para, "landmarks": landmarks,
            "landmark_boxes": roi}
    if "pt3d_68" in mat:
        meta["landmarks_3d"] = faces("pt3d_68").transpose(0, 2, 1)
    if "visible_68" in mat:
        meta["visibility"] = faces("visible_68")
    if "expr_class" in mat:
        classes = [_expression(float(v), path) for v in faces("expr_class")]
        meta["expression"] = np.array([-1 if c is None else c for c in classes], dtype=np.int64)
    if "expr_weights" in mat:
        meta["expr_weights"] = faces("expr_weights")
    if "identity" in mat:
        meta["identity"] = faces("identity").astype(np.int64)
    boxes = faces("face_box") if "face_box" in mat else roi
    return Sample(source="synth-scenes", image_path=str(find_image(path)), boxes=boxes, meta=meta)


def _expression(value: int | float | str, path: Path) -> int | None:
    if isinstance(value, str):
        if value not in EXPRESSIONS:
            raise FileError(path, f"'expr_class' {value!r} is not one of {EXPRESSIONS}")
        return EXPRESSIONS.index(value)
    if not (np.isfinite(value) and value == int(value) and -1 <= value < len(EXPRESSIONS)):
        raise FileError(path, f"'expr_class' {value} is not -1 or an index into {EXPRESSIONS}")
    return None if value == -1 else int(value)

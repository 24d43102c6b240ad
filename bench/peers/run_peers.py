"""Peers side by side on AFLW2000-dev (pose) or 300-W (landmarks): MediaPipe face mesh, dlib 68 landmarks, facemtl.

Run in the peers' venv (``bench/peers/setup.sh``; MediaPipe 0.10.21 needs numpy<2)::

    bench/peers/.venv/bin/python bench/peers/run_peers.py [--data ../shared/data/aflw2000-dev]
    bench/peers/.venv/bin/python bench/peers/run_peers.py --dataset 300w --data ../shared/data/300w/helen-train \
        --holdout val --holdout-n 100

Every peer runs on the full image (its own detector), then the landmark peers go through the
same landmark-to-pose step as :func:`facemtl.geometry.pnp.landmarks_to_pose` (facemtl's mean
face, focal = image width, principal point at the image centre), so their pose differs only by
their 68 landmarks. Each peer's rotation is converted explicitly to facemtl's convention (``R`` head to
OpenCV camera, ``[yaw, pitch, roll]`` of ``Pose_Para``) before scoring.

Scoring: the face scored in an image is the detection whose landmark box overlaps the annotated
one most (IoU >= 0.3, else the image counts as a detection failure). Images whose annotated pose
is outside +-99 deg in any angle are dropped (the AFLW2000 protocol); pose MAE
(:func:`facemtl.metrics.pose.pose_mae`) and NME (inter-ocular, :func:`facemtl.metrics.landmarks.nme`)
are over the faces each peer found, plus a pose MAE over the images every peer found.
Time is wall time per image (detection + landmarks + pose, every face), the fastest of
``--repeats`` runs, median over images, after one warm-up image.

``--dataset 300w`` scores landmarks only (no PnP): NME over the 68 points and over the 51 inner
ones (17-67), both normalised by the outer-eye-corner distance, and adds two rows given the
annotated landmark box instead of a detection: dlib's predictor and facemtl's analyzer.

Writes the section between ``<!-- peers:start -->`` and ``<!-- peers:end -->`` (300-W:
``<!-- peers-300w:start -->`` ... ``<!-- peers-300w:end -->``) of ``docs/BENCHMARKS.md``
(``--no-write`` only prints it).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from facemtl.data.registry import load_dataset
from facemtl.geometry.pnp import POINT_SUBSETS, PnPError, camera_matrix, mean_face, solve_pose, subset_indices
from facemtl.geometry.rotations import matrix_to_euler
from facemtl.metrics.landmarks import nme
from facemtl.metrics.pose import mean_signed_error, pose_mae

ROOT = Path(__file__).resolve().parents[2]
# Marked section of docs/BENCHMARKS.md and default folder per --dataset; AFLW2000 is the pose mode.
SECTIONS = {"aflw2000": ("<!-- peers:start -->", "<!-- peers:end -->"),
            "300w": ("<!-- peers-300w:start -->", "<!-- peers-300w:end -->")}
DEFAULT_DATA = {"aflw2000": ROOT.parent / "shared" / "data" / "aflw2000-dev",
                "300w": ROOT.parent / "shared" / "data" / "300w" / "helen-train"}
INNER = np.arange(17, 68)  # iBUG-68 without the jaw: the "51 points" of 300-W
FILTER_DEG = 99.0
MIN_IOU = 0.3

# MediaPipe face mesh index (or two, averaged) of each iBUG-68 point, in iBUG order (0-based).
# Source: Peizhi Yan, "Mediapipe_2_Dlib_Landmarks" (github.com/PeizhiYan/Mediapipe_2_Dlib_Landmarks,
# mp2dlib.py, 2024), used as published: not tuned here.
MEDIAPIPE_TO_68: tuple[tuple[int, ...], ...] = (
    # jaw 0-16
    (127,), (234,), (93,), (132, 58), (58, 172), (136,), (150,), (176,), (152,),
    (400,), (379,), (365,), (397, 288), (361,), (323,), (454,), (356,),
    # brows 17-26
    (70,), (63,), (105,), (66,), (107,), (336,), (296,), (334,), (293,), (300,),
    # nose 27-35
    (168, 6), (197, 195), (5,), (4,), (75,), (97,), (2,), (326,), (305,),
    # eyes 36-47
    (33,), (160,), (158,), (133,), (153,), (144,), (362,), (385,), (387,), (263,), (373,), (380,),
    # outer lips 48-59
    (61,), (39,), (37,), (0,), (267,), (269,), (291,), (321,), (314,), (17,), (84,), (91,),
    # inner lips 60-67
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),
)


def mediapipe_to_68(mesh: np.ndarray) -> np.ndarray:
    """iBUG-68 points (68, 2) from MediaPipe's face mesh points (468 or 478, 2)."""
    return np.stack([mesh[list(ids)].mean(axis=0) for ids in MEDIAPIPE_TO_68])


@dataclass
class Face:
    """One detected face in facemtl's conventions: 68 landmarks (0-based px) and head-to-camera ``R``."""

    landmarks: np.ndarray
    R: Optional[np.ndarray]  # None in the landmark mode (no PnP)


def pose_from_landmarks(landmarks: np.ndarray, width: int, height: int, subset: str) -> Optional[np.ndarray]:
    """facemtl ``R`` (3, 3) of iBUG-68 landmarks by facemtl's PnP, or None if PnP fails.

    The same step as :func:`facemtl.geometry.pnp.landmarks_to_pose` but keeping the matrix:
    the mean face is in facemtl's head frame, so ``solve_pose``'s ``R = Rodrigues(rvec)`` is
    ``conventions.from_opencv_rvec(rvec)``, facemtl's ``R`` with no further conversion.
    """
    idx = subset_indices(subset)
    try:
        R, _ = solve_pose(landmarks[idx], mean_face(subset), camera_matrix(width, height))
    except PnPError:
        return None
    return R


# ---- peers ----------------------------------------------------------------------------------------


@dataclass
class Peer:
    name: str
    # (BGR uint8 image, annotated landmark box) -> faces; only the "annotated box" peers use the box
    run: Callable[[np.ndarray, np.ndarray], list[Face]]
    settings: str
    euler: str  # how its rotation becomes facemtl's R and Euler angles (for BENCHMARKS.md)


def _faces(landmark_sets: list[np.ndarray], width: int, height: int, subset: Optional[str]) -> list[Face]:
    """Faces with a pose from PnP on ``subset``; a face whose PnP fails is dropped (it then counts as missed).

    ``subset=None`` (landmark mode): no PnP, every face kept with ``R = None``.
    """
    if subset is None:
        return [Face(lm, None) for lm in landmark_sets]
    faces = []
    for lm in landmark_sets:
        R = pose_from_landmarks(lm, width, height, subset)
        if R is not None:
            faces.append(Face(lm, R))
    return faces


def _pnp_euler(points: str, subset: Optional[str]) -> str:
    if subset is None:
        return f"{points}; no pose."
    return (f"{points} -> `solve_pose` on facemtl's mean face (points: {subset}); the mean face is in facemtl's "
            "head frame, so `R = from_opencv_rvec(rvec)` is facemtl's R with no other change, and "
            "yaw/pitch/roll = `matrix_to_euler(R)`.")


def mediapipe_peer(refine: bool, subset: Optional[str]) -> Peer:
    import mediapipe as mp

    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=5, refine_landmarks=refine,
                                           min_detection_confidence=0.5)

    def run(image: np.ndarray, box: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        found = mesh.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).multi_face_landmarks or []
        # Normalised image coordinates (0 = the image's left edge) -> 0-based pixel centres.
        meshes = [np.array([(p.x * w - 0.5, p.y * h - 0.5) for p in f.landmark]) for f in found]
        return _faces([mediapipe_to_68(m) for m in meshes], w, h, subset)

    return Peer(
        f"MediaPipe face_mesh{', refine_landmarks' if refine else ''}{'' if subset is None else ' + PnP'}", run,
        f"static_image_mode, max_num_faces=5, refine_landmarks={refine}, min_detection_confidence=0.5; "
        "no thread setting in the legacy API",
        _pnp_euler("468-point mesh -> iBUG-68 (mapping in the notes)", subset),
    )


def _dlib_predictor():
    import dlib

    # The model ships inside the face_recognition_models wheel; find it without importing the
    # package (its __init__ needs pkg_resources).
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("face_recognition_models is not installed: run bench/peers/setup.sh")
    model = Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    return dlib.shape_predictor(str(model))


def dlib_peer(upsample: Optional[int], subset: Optional[str]) -> Peer:
    """dlib's 68-point predictor on its HOG detector's faces, or (``upsample=None``) on the annotated box."""
    import dlib

    predictor = _dlib_predictor()
    if upsample is None:
        def rects(rgb: np.ndarray, box: np.ndarray) -> list:
            return [dlib.rectangle(*(int(round(v)) for v in box))]

        name = "dlib 68 landmarks, annotated box"
        detection = "no detector: `dlib.rectangle` of the annotated landmark box (rounded to pixels)"
    else:
        detector = dlib.get_frontal_face_detector()

        def rects(rgb: np.ndarray, box: np.ndarray) -> list:
            return detector(rgb, upsample)

        name = "dlib HOG + 68 landmarks"
        detection = f"`get_frontal_face_detector`, upsample={upsample} (as in dlib's example)"

    def run(image: np.ndarray, box: np.ndarray) -> list[Face]:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        # dlib's part coordinates are integer pixel indices: 0-based pixel centres already.
        shapes = [predictor(rgb, r) for r in rects(rgb, box)]
        lms = [np.array([(p.x, p.y) for p in s.parts()], dtype=np.float64) for s in shapes]
        return _faces(lms, image.shape[1], image.shape[0], subset)

    return Peer(name + ("" if subset is None else " + PnP"), run,
                f"{detection}; `shape_predictor_68_face_landmarks.dat`; single thread",
                _pnp_euler("68 points, iBUG-68 order already", subset))


def facemtl_peer(threads: int, model: Optional[Path], given_box: bool = False,
                 min_face: float = 0.0, flip: bool = True) -> Optional[Peer]:
    """facemtl's analyzer with ``model`` (default: the shipped model), or None while none is shipped.

    ``given_box``: no detector, the analyzer gets the annotated landmark box (``boxes=box[None]``).
    ``min_face``: the analyzer's (its detector then runs on a smaller canvas: near faces only).
    ``flip``: the analyzer's flip averaging (off: one pass of the main model, no flip-gap filter).
    """
    import facemtl
    from facemtl.infer.onnx_model import DEFAULT_MODEL

    if model is None and not DEFAULT_MODEL.is_file():
        return None
    analyzer = facemtl.FaceAnalyzer(model, threads=threads, min_face=min_face, flip=flip,
                                    **({"detector": None} if given_box else {}))

    def run(image: np.ndarray, box: np.ndarray) -> list[Face]:
        faces = analyzer(image, boxes=box[None] if given_box else None)
        return [Face(np.asarray(f.landmarks, dtype=np.float64),
                     None if f.pose is None else np.asarray(f.pose.matrix, dtype=np.float64))
                for f in faces if f.landmarks is not None]

    name = "facemtl (default model)" if model is None else f"facemtl ({model.name})"
    call = f"`facemtl.FaceAnalyzer({'' if model is None else repr(model.name) + ', '}threads={threads}"
    if min_face:
        name, call = name + f", min_face={min_face:g}", call + f", min_face={min_face:g}"
    if not flip:
        name, call = name + ", one pass", call + ", flip=False"
    return Peer(name + (", annotated box" if given_box else ""), run,
                call + (", detector=None)(image, boxes=box[None])`: the annotated landmark box, no detector"
                        if given_box else ")`, its default detector"),
                "native: `Face.pose.matrix` is facemtl's R (no conversion); yaw/pitch/roll = `matrix_to_euler(R)`.")


# ---- evaluation -----------------------------------------------------------------------------------


def _key(sample) -> str:
    return Path(sample.image_path).name


def _landmark_box(points: np.ndarray) -> np.ndarray:
    return np.concatenate([np.nanmin(points, axis=0), np.nanmax(points, axis=0)])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@dataclass
class PeerResult:
    peer: Peer
    ms: list[float] = field(default_factory=list)
    faces: dict[str, Face] = field(default_factory=dict)  # image name -> the matched face


def evaluate(peer: Peer, samples: list, images: dict[str, np.ndarray], repeats: int) -> PeerResult:
    """Run ``peer`` on every sample; ``ms`` per image is the fastest of ``repeats`` runs (the machine is shared).

    Faces without a pose are no candidates for a sample with an annotated pose.
    """
    peer.run(images[_key(samples[0])], samples[0].box)  # warm-up: first-call allocations
    result = PeerResult(peer)
    for s in samples:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            faces = peer.run(images[_key(s)], s.box)
            times.append((time.perf_counter() - t0) * 1000)
        result.ms.append(min(times))
        faces = [f for f in faces if s.pose is None or f.R is not None]
        ious = [_iou(_landmark_box(f.landmarks), s.box) for f in faces]
        if ious and max(ious) >= MIN_IOU:
            result.faces[_key(s)] = faces[int(np.argmax(ious))]
    return result


def _found(result: PeerResult, samples: list, keys: Optional[set] = None) -> list:
    """The samples ``result`` found a face for (and in ``keys``, if given)."""
    return [s for s in samples if _key(s) in result.faces and (keys is None or _key(s) in keys)]


def _pose_errors(result: PeerResult, samples: list, keys: Optional[set] = None) -> tuple[dict, dict]:
    """(MAE, mean signed error) dicts of :mod:`facemtl.metrics.pose` over the faces found (in ``keys``)."""
    chosen = _found(result, samples, keys)
    if not chosen:
        empty = {"yaw": np.nan, "pitch": np.nan, "roll": np.nan, "mean": np.nan, "n": 0}
        return empty, empty
    pred = matrix_to_euler(np.stack([result.faces[_key(s)].R for s in chosen]))
    gt = np.stack([s.pose for s in chosen])
    return pose_mae(pred, gt, filter_deg=FILTER_DEG), mean_signed_error(pred, gt, filter_deg=FILTER_DEG)


def _landmark_nme(pred: np.ndarray, gt: np.ndarray, points: Optional[np.ndarray] = None) -> np.ndarray:
    """Inter-ocular NME per face (N,) over ``points`` (default all 68).

    :func:`facemtl.metrics.landmarks.nme` leaves NaN ground-truth points out of the mean and
    normalises by points 36 and 45 whatever is scored, so a subset is the others set to NaN.
    """
    gt = np.array(gt, dtype=np.float64)
    if points is not None:
        gt[:, np.setdiff1d(np.arange(gt.shape[1]), points)] = np.nan
    return nme(pred, gt, "inter_ocular")


def _nme(result: PeerResult, samples: list, keys: Optional[set] = None, points: Optional[np.ndarray] = None) -> float:
    """Mean inter-ocular NME over the faces found (in ``keys``), over ``points`` (default all 68)."""
    chosen = _found(result, samples, keys)
    if not chosen:
        return np.nan
    pred = np.stack([result.faces[_key(s)].landmarks for s in chosen])
    return float(np.nanmean(_landmark_nme(pred, np.stack([s.landmarks for s in chosen]), points)))


def per_face_table(results: list[PeerResult], samples: list) -> str:
    """One line per image and each peer's error on it ("–": not found): the mean absolute pose error after
    the annotated yaw/pitch/roll, or without a pose annotation the 68-point NME (%)."""
    pose = samples[0].pose is not None
    head = "image | yaw pitch roll | " if pose else "image (NME 68 %) | "
    lines = [head + " | ".join(r.peer.name for r in results)]
    for s in samples:
        errors = []
        for r in results:
            face = r.faces.get(_key(s))
            if face is None:
                err = np.nan
            elif pose:
                err = np.abs(matrix_to_euler(face.R) - s.pose).mean()
            else:
                err = 100 * _landmark_nme(face.landmarks[None], s.landmarks[None])[0]
            errors.append(_f(err, 1))
        label = " ".join(f"{a:+.1f}" for a in s.pose) + " | " if pose else ""
        lines.append(f"{_key(s)} | {label}" + " | ".join(errors))
    return "\n".join(lines)


# ---- report ---------------------------------------------------------------------------------------


def _f(x: float, digits: int = 2, sign: str = "") -> str:
    return "–" if not np.isfinite(x) else f"{x:{sign}.{digits}f}"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def model_note(model: Optional[Path]) -> str:
    """The facemtl model file's name, size and SHA-256 prefix (which model the numbers are of)."""
    from facemtl.infer.onnx_model import DEFAULT_MODEL

    path = model or DEFAULT_MODEL
    if not path.is_file():
        return f"facemtl model: none (`{path.name}` not found)"
    data = path.read_bytes()
    return f"facemtl model: `{path.name}`, {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]}"


MEDIAPIPE_NOTE = (
    "* MediaPipe's 468 points → iBUG-68: the correspondence of Peizhi Yan's Mediapipe_2_Dlib_Landmarks "
    "(`mp2dlib.py`, 2024; one mesh vertex per point, or the mean of two), used as published. Its jaw points are "
    "fixed mesh vertices while dlib's follow the visible outline (as 300-W annotates it), so the two NMEs are "
    "only roughly comparable.")


@dataclass
class Context:
    """What the section says about the run, besides the results."""

    dataset: str
    data: Path
    samples_note: str  # which images, e.g. "31 of the 32 images of `aflw2000-dev` (1 dropped: ...)"
    command: str
    threads: int
    subset: str
    repeats: int
    load: float
    model: str  # model_note()
    facemtl_note: Optional[str] = None  # set while no facemtl model is shipped


def report(results: list[PeerResult], samples: list, ctx: Context) -> str:
    """The marked section of docs/BENCHMARKS.md: the shared header, then the pose or the landmark tables."""
    start, end = SECTIONS[ctx.dataset]
    pose = ctx.dataset == "aflw2000"
    title = f"Peers on {ctx.data.name}" if pose else f"Peers on 300-W {ctx.data.name} (landmarks)"
    lines = [
        start,
        f"## {title}",
        "",
        f"Written by `bench/peers/run_peers.py` on {datetime.date.today().isoformat()}: {ctx.samples_note}, {_cpu()}, "
        f"{os.cpu_count()} cores, OpenCV threads = {ctx.threads}. Versions: mediapipe {_version('mediapipe')}, "
        f"dlib {_version('dlib-bin')}, opencv {cv2.__version__}, numpy {np.__version__}, "
        f"onnxruntime {_version('onnxruntime')}, facemtl {_version('facemtl')}; {ctx.model}.",
        "",
        "```bash",
        "bench/peers/setup.sh    # once: bench/peers/.venv (numpy<2 for MediaPipe)",
        ctx.command,
        "```",
        "",
    ]
    keys = [_key(s) for s in samples]
    common = set(keys).intersection(*(r.faces.keys() for r in results))
    lines += (_pose_tables if pose else _landmark_tables)(results, samples, common, ctx)
    lines += ["", "Settings and Euler convention per peer (every peer's rotation is converted to facemtl's `R`, head "
              "to OpenCV camera, and its yaw/pitch/roll are those of `Pose_Para`: R = Rx(-pitch) Ry(yaw) Rz(roll)):"
              if pose else "Settings per peer:", ""]
    for r in results:
        lines.append(f"* **{r.peer.name}**: {r.peer.settings}." + (f" {r.peer.euler}" if pose else ""))
    lines += ["", "Notes:", ""] + (_pose_notes if pose else _landmark_notes)(ctx, samples) + [end]
    return "\n".join(lines) + "\n"


def _timing(what: str, ctx: Context) -> str:
    return (f"ms = wall time per image ({what}), best of {ctx.repeats} run(s), median over the images, after one "
            f"warm-up image; the machine is shared with other jobs (load average {ctx.load:.1f} at the start), so "
            "times are indicative.")


def _table(results: list[PeerResult], columns: list[tuple[str, Callable[[PeerResult], str]]],
           facemtl_note: Optional[str] = None) -> list[str]:
    """Markdown table, one row per peer; ``columns``: (header, cell of a peer's result)."""
    lines = ["| peer | " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * (len(columns) + 1)]
    lines += [f"| {r.peer.name} | " + " | ".join(cell(r) for _, cell in columns) + " |" for r in results]
    if facemtl_note:
        lines.append(f"| facemtl | {facemtl_note} |" + " |" * (len(columns) - 1))
    return lines


def _found_column(n: int) -> tuple[str, Callable[[PeerResult], str]]:
    return "found", lambda r: f"{len(r.faces)} / {n} ({n - len(r.faces)} missed)"


MS_COLUMN = ("ms / image", lambda r: _f(float(np.median(r.ms)), 1))


def _pose_tables(results: list[PeerResult], samples: list, common: set, ctx: Context) -> list[str]:
    def mae(keys: Optional[set]) -> list[tuple[str, Callable[[PeerResult], str]]]:
        def cell(angle: str, fmt: str) -> Callable[[PeerResult], str]:
            return lambda r: fmt.format(_f(_pose_errors(r, samples, keys)[0][angle]))
        return [(a, cell(a, "{}")) for a in ("yaw", "pitch", "roll")] + [("**MAE**", cell("mean", "**{}**"))]

    def bias(r: PeerResult) -> str:
        b = _pose_errors(r, samples)[1]
        return " / ".join(_f(b[a], 1, "+") for a in ("yaw", "pitch", "roll"))

    nme_column = ("NME %", lambda r: _f(100 * _nme(r, samples)))
    return [
        "Pose MAE and bias (mean signed error, prediction − annotation) in degrees and NME (mean landmark error / "
        "outer-eye-corner distance, %) over the faces each peer found; a face counts as found when a detection's "
        f"landmark box overlaps the annotated one with IoU ≥ {MIN_IOU}. "
        + _timing("detection + landmarks + pose of every face", ctx),
        "",
        *_table(results, [_found_column(len(samples)), *mae(None), ("bias yaw / pitch / roll", bias), nme_column,
                          MS_COLUMN], ctx.facemtl_note),
        "", f"Same pose MAE on the {len(common)} images every peer above found:", "",
        *_table(results, mae(common)),
    ]


def _landmark_tables(results: list[PeerResult], samples: list, common: set, ctx: Context) -> list[str]:
    def nmes(keys: Optional[set]) -> list[tuple[str, Callable[[PeerResult], str]]]:
        return [("**NME 68 %**", lambda r: f"**{_f(100 * _nme(r, samples, keys))}**"),
                ("NME 51 %", lambda r: _f(100 * _nme(r, samples, keys, INNER)))]

    return [
        "NME (mean point-to-point error / distance between the outer eye corners, points 36 and 45, %) over the 68 "
        "points and over the 51 inner ones (17–67, without the jaw), over the faces each peer found; a face counts "
        f"as found when a detection's landmark box overlaps the annotated one with IoU ≥ {MIN_IOU} (the "
        "\"annotated box\" rows get that box instead of a detection). "
        + _timing("detection + landmarks of every face; \"annotated box\" rows: landmarks of that face", ctx),
        "",
        *_table(results, [_found_column(len(samples)), *nmes(None), MS_COLUMN], ctx.facemtl_note),
        "", f"Same NME on the {len(common)} faces every peer above found:", "",
        *_table(results, nmes(common)),
    ]


def _pose_notes(ctx: Context, samples: list) -> list[str]:
    return [
        "* Landmark-to-pose for every landmark peer: `facemtl.geometry.pnp.solve_pose` with `mean_face()` (ICT-FaceKit "
        "neutral at the 68 landmarks, aligned to the `Pose_Para` frontal; see `facemtl/assets/mean_face_68.json`) and "
        "`camera_matrix(w, h)` (focal = image width, centre of the image): the step of `landmarks_to_pose`, keeping "
        f"the matrix. Points: `{ctx.subset}`; no per-peer adjustment.",
        MEDIAPIPE_NOTE,
        "* MediaPipe's own facial transformation matrix is not measured: it needs the tasks API `FaceLandmarker` "
        "and its `face_landmarker.task` bundle, which the mediapipe 0.10.21 wheel does not ship (neither does it "
        "ship `canonical_face_model.obj` / the geometry pipeline metadata); nothing is downloaded at run time.",
        "* AFLW2000-3D's ground truth is a 3DMM fit (pose and `pt3d_68`), not a manual annotation; NME is against "
        "the 2D projection of `pt3d_68`, whose jaw is the 3D model's jaw, not the visible outline.",
    ]


def _landmark_notes(ctx: Context, samples: list) -> list[str]:
    sizes = sorted({s.load_image().shape[1::-1] for s in samples})
    size = (f"{sizes[0][0]}×{sizes[0][1]}" if len(sizes) == 1
            else f"{min(w for w, _ in sizes)}–{max(w for w, _ in sizes)} px wide")
    return [
        "* NME: `facemtl.metrics.nme(pred, gt, norm=\"inter_ocular\")` per face (0-based iBUG-68 points 36 and 45), "
        "mean over the faces; for the 51 points the jaw's ground truth (0–16) is set to NaN, which `nme` leaves out "
        "of the mean while the normaliser stays the same outer-eye-corner distance.",
        f"* Images: {size}; the annotated landmark box is the tight box of the 68 annotated points.",
        "* dlib's `shape_predictor_68_face_landmarks.dat` is trained on iBUG 300-W's training set, whose usual split "
        "(`labels_ibug_300W_train.xml`) includes HELEN's training images: these faces are likely in its training "
        "data, so its NME here is optimistic. Its predictor was trained on boxes of dlib's detector, not on tight "
        "landmark boxes, so the \"annotated box\" row starts from a box it has not seen.",
        "* facemtl, \"annotated box\": the analyzer's own crop margin and landmark-box refinement on the annotated "
        "box, as on a detection; no detector runs.",
        MEDIAPIPE_NOTE,
    ]


def write_section(path: Path, section: str, markers: tuple[str, str]) -> None:
    """Replace (or append) the section between ``markers`` of ``path``, leaving the rest of the file as it is."""
    start, end = markers
    text = path.read_text() if path.is_file() else "# Benchmarks\n\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section.rstrip("\n") + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="aflw2000", choices=sorted(SECTIONS),
                        help="aflw2000: pose + NME (default); 300w: landmarks only, plus the annotated-box rows")
    parser.add_argument("--data", type=Path,
                        help="dataset folder (facemtl.data.registry format); default ../shared/data/aflw2000-dev, "
                             "for 300w ../shared/data/300w/helen-train")
    parser.add_argument("--holdout", choices=("val", "train"),
                        help="score only this part of facemtl.data.splits.holdout (val: the faces facemtl never "
                             "trains on)")
    parser.add_argument("--holdout-n", type=int, default=100, help="faces held out for validation (default 100)")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    parser.add_argument("--threads", type=int, default=2, help="OpenCV / onnxruntime threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per image; the fastest counts (default 3)")
    parser.add_argument("--facemtl-model", type=Path, help="ONNX model for the facemtl row (default: the shipped one)")
    parser.add_argument("--subset", default="68", choices=sorted(POINT_SUBSETS),
                        help="landmarks used by PnP (facemtl.geometry.pnp.POINT_SUBSETS; default all 68; "
                             "aflw2000 only)")
    parser.add_argument("--dlib-upsample", type=int, default=1, help="dlib HOG upsampling (dlib's example: 1)")
    parser.add_argument("--near-face", type=float, default=0.2,
                        help="also run facemtl with this min_face (a fraction of the shorter side: its detector "
                             "seeks no smaller face, on a smaller canvas; MediaPipe's short-range trade), with flip "
                             "averaging and in one pass; 0: not")
    parser.add_argument("--per-face", action="store_true",
                        help="also print every image's error per peer (pose: mean absolute error; 300w: NME)")
    args = parser.parse_args(argv)

    cv2.setNumThreads(args.threads)
    load = os.getloadavg()[0]
    pose = args.dataset == "aflw2000"
    data = args.data or DEFAULT_DATA[args.dataset]
    every = load_dataset(args.dataset, data, holdout=args.holdout, holdout_n=args.holdout_n)
    where = f"`{data.name}`" if args.holdout is None else (
        f"the `{args.holdout}` part of `{data.name}` (`facemtl.data.splits.holdout`, {args.holdout_n} held out"
        f"{': the faces facemtl never trains on' if args.holdout == 'val' else ''})")
    if pose:
        samples = [s for s in every if (np.abs(s.pose) <= FILTER_DEG).all()]
        samples_note = (f"{len(samples)} of the {len(every)} images of {where} ({len(every) - len(samples)} dropped: "
                        f"an annotated angle outside ±{FILTER_DEG:.0f}°)")
    else:
        samples, samples_note = every, f"the {len(every)} faces of {where}"
    images = {_key(s): s.load_image() for s in samples}

    subset = args.subset if pose else None
    peers = [mediapipe_peer(False, subset), mediapipe_peer(True, subset), dlib_peer(args.dlib_upsample, subset)]
    if not pose:
        peers.append(dlib_peer(None, None))
    facemtl_note = None
    ours = [facemtl_peer(args.threads, args.facemtl_model, given) for given in ((False,) if pose else (False, True))]
    if args.near_face:  # near faces only, with flip averaging and in one pass (the fastest setting)
        ours += [facemtl_peer(args.threads, args.facemtl_model, min_face=args.near_face, flip=flip)
                 for flip in (True, False)]
    if any(o is None for o in ours):
        facemtl_note = "no default model yet (facemtl/assets/default.onnx)"
        print("facemtl: no default model yet")
    else:
        peers += ours

    results = []
    for peer in peers:
        r = evaluate(peer, samples, images, args.repeats)
        if pose:
            m, _ = _pose_errors(r, samples)
            scores = (f"MAE yaw {m['yaw']:.2f} pitch {m['pitch']:.2f} roll {m['roll']:.2f} mean {m['mean']:.2f}, "
                      f"NME {100 * _nme(r, samples):.2f}%")
        else:
            scores = f"NME 68 {100 * _nme(r, samples):.2f}%, 51 {100 * _nme(r, samples, points=INNER):.2f}%"
        print(f"{peer.name}: found {len(r.faces)}/{len(samples)}, {scores}, {np.median(r.ms):.1f} ms/image", flush=True)
        results.append(r)

    if args.per_face:
        print(per_face_table(results, samples))
    command = shlex.join(["bench/peers/.venv/bin/python", "bench/peers/run_peers.py",
                          *(sys.argv[1:] if argv is None else argv)])
    ctx = Context(args.dataset, data, samples_note, command, args.threads, args.subset, args.repeats, load,
                  model_note(args.facemtl_model), facemtl_note)
    section = report(results, samples, ctx)
    if args.no_write:
        print(section)
    else:
        write_section(args.doc, section, SECTIONS[args.dataset])
        print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Peers side by side on AFLW2000-dev: MediaPipe face mesh, dlib 68 landmarks and facemtl.

Run in the peers' venv (``bench/peers/setup.sh``; MediaPipe 0.10.21 needs numpy<2)::

    bench/peers/.venv/bin/python bench/peers/run_peers.py [--data ../shared/data/aflw2000-dev]

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

Writes the section between ``<!-- peers:start -->`` and ``<!-- peers:end -->`` of
``docs/BENCHMARKS.md`` (``--no-write`` only prints it).
"""

from __future__ import annotations

import argparse
import datetime
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

from facemtl.data.mat3ddfa import read_aflw2000
from facemtl.geometry.pnp import POINT_SUBSETS, PnPError, camera_matrix, mean_face, solve_pose, subset_indices
from facemtl.geometry.rotations import matrix_to_euler
from facemtl.metrics.landmarks import nme
from facemtl.metrics.pose import mean_signed_error, pose_mae

ROOT = Path(__file__).resolve().parents[2]
DOC_START, DOC_END = "<!-- peers:start -->", "<!-- peers:end -->"
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
    R: np.ndarray


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
    run: Callable[[np.ndarray], list[Face]]  # BGR uint8 image -> faces
    settings: str
    euler: str  # how its rotation becomes facemtl's R and Euler angles (for BENCHMARKS.md)


def _faces(landmark_sets: list[np.ndarray], width: int, height: int, subset: str) -> list[Face]:
    """Faces with a pose from PnP; a face whose PnP fails is dropped (it then counts as missed)."""
    faces = []
    for lm in landmark_sets:
        R = pose_from_landmarks(lm, width, height, subset)
        if R is not None:
            faces.append(Face(lm, R))
    return faces


def _pnp_euler(points: str, subset: str) -> str:
    return (f"{points} -> `solve_pose` on facemtl's mean face (points: {subset}); the mean face is in facemtl's "
            "head frame, so `R = from_opencv_rvec(rvec)` is facemtl's R with no other change, and "
            "yaw/pitch/roll = `matrix_to_euler(R)`.")


def mediapipe_peer(refine: bool, subset: str) -> Peer:
    import mediapipe as mp

    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=5, refine_landmarks=refine,
                                           min_detection_confidence=0.5)

    def run(image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        found = mesh.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)).multi_face_landmarks or []
        # Normalised image coordinates (0 = the image's left edge) -> 0-based pixel centres.
        meshes = [np.array([(p.x * w - 0.5, p.y * h - 0.5) for p in f.landmark]) for f in found]
        return _faces([mediapipe_to_68(m) for m in meshes], w, h, subset)

    return Peer(
        f"MediaPipe face_mesh{', refine_landmarks' if refine else ''} + PnP", run,
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


def dlib_peer(upsample: int, subset: str) -> Peer:
    import dlib

    detector, predictor = dlib.get_frontal_face_detector(), _dlib_predictor()

    def run(image: np.ndarray) -> list[Face]:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        # dlib's part coordinates are integer pixel indices: 0-based pixel centres already.
        shapes = [predictor(rgb, r) for r in detector(rgb, upsample)]
        lms = [np.array([(p.x, p.y) for p in s.parts()], dtype=np.float64) for s in shapes]
        return _faces(lms, image.shape[1], image.shape[0], subset)

    return Peer("dlib HOG + 68 landmarks + PnP", run,
                f"`get_frontal_face_detector`, upsample={upsample} (as in dlib's example); "
                "`shape_predictor_68_face_landmarks.dat`; single thread",
                _pnp_euler("68 points, iBUG-68 order already", subset))


def facemtl_peer(threads: int, model: Optional[Path]) -> Optional[Peer]:
    """facemtl's analyzer with ``model`` (default: the shipped model), or None while none is shipped."""
    import facemtl
    from facemtl.infer.onnx_model import DEFAULT_MODEL

    if model is None and not DEFAULT_MODEL.is_file():
        return None
    analyzer = facemtl.FaceAnalyzer(model, threads=threads)

    def run(image: np.ndarray) -> list[Face]:
        return [Face(np.asarray(f.landmarks, dtype=np.float64), np.asarray(f.pose.matrix, dtype=np.float64))
                for f in analyzer(image) if f.landmarks is not None and f.pose is not None]

    name = "facemtl (default model)" if model is None else f"facemtl ({model.name})"
    return Peer(name, run, f"`facemtl.FaceAnalyzer({'' if model is None else repr(model.name) + ', '}threads={threads})`, "
                "its default detector",
                "native: `Face.pose.matrix` is facemtl's R (no conversion); yaw/pitch/roll = `matrix_to_euler(R)`.")


# ---- evaluation -----------------------------------------------------------------------------------


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
    """Run ``peer`` on every sample; ``ms`` per image is the fastest of ``repeats`` runs (the machine is shared)."""
    peer.run(images[Path(samples[0].image_path).name])  # warm-up: first-call allocations
    result = PeerResult(peer)
    for s in samples:
        key = Path(s.image_path).name
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            faces = peer.run(images[key])
            times.append((time.perf_counter() - t0) * 1000)
        result.ms.append(min(times))
        ious = [_iou(_landmark_box(f.landmarks), s.box) for f in faces]
        if ious and max(ious) >= MIN_IOU:
            result.faces[key] = faces[int(np.argmax(ious))]
    return result


def _pose_errors(result: PeerResult, samples: list, keys: Optional[set] = None) -> tuple[dict, dict]:
    """(MAE, mean signed error) dicts of :mod:`facemtl.metrics.pose` over the faces found (in ``keys``)."""
    chosen = [s for s in samples if Path(s.image_path).name in result.faces
              and (keys is None or Path(s.image_path).name in keys)]
    if not chosen:
        empty = {"yaw": np.nan, "pitch": np.nan, "roll": np.nan, "mean": np.nan, "n": 0}
        return empty, empty
    pred = matrix_to_euler(np.stack([result.faces[Path(s.image_path).name].R for s in chosen]))
    gt = np.stack([s.pose for s in chosen])
    return pose_mae(pred, gt, filter_deg=FILTER_DEG), mean_signed_error(pred, gt, filter_deg=FILTER_DEG)


def _nme(result: PeerResult, samples: list) -> float:
    chosen = [s for s in samples if Path(s.image_path).name in result.faces]
    if not chosen:
        return np.nan
    pred = np.stack([result.faces[Path(s.image_path).name].landmarks for s in chosen])
    return float(np.nanmean(nme(pred, np.stack([s.landmarks for s in chosen]), "inter_ocular")))


def per_face_table(results: list[PeerResult], samples: list) -> str:
    """One line per image: its annotated yaw/pitch/roll and each peer's mean absolute error ("–": not found)."""
    lines = ["image | yaw pitch roll | " + " | ".join(r.peer.name for r in results)]
    for s in samples:
        key = Path(s.image_path).name
        errors = []
        for r in results:
            face = r.faces.get(key)
            err = np.abs(matrix_to_euler(face.R) - s.pose).mean() if face is not None else np.nan
            errors.append(_f(err, 1))
        lines.append(f"{key} | {' '.join(f'{a:+.1f}' for a in s.pose)} | " + " | ".join(errors))
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


def report(results: list[PeerResult], samples: list, n_all: int, data: Path, facemtl_note: Optional[str],
           command: str, threads: int, subset: str, repeats: int, load: float) -> str:
    keys = [Path(s.image_path).name for s in samples]
    common = set(keys).intersection(*(r.faces.keys() for r in results))
    n = len(samples)
    lines = [
        DOC_START,
        "## Peers on aflw2000-dev",
        "",
        f"Written by `bench/peers/run_peers.py` on {datetime.date.today().isoformat()}: {n} of the {n_all} images of "
        f"`{data.name}` ({n_all - n} dropped: an annotated angle outside ±{FILTER_DEG:.0f}°), {_cpu()}, "
        f"{os.cpu_count()} cores, OpenCV threads = {threads}. Versions: mediapipe {_version('mediapipe')}, "
        f"dlib {_version('dlib-bin')}, opencv {cv2.__version__}, numpy {np.__version__}, "
        f"onnxruntime {_version('onnxruntime')}, facemtl {_version('facemtl')}.",
        "",
        "```bash",
        "bench/peers/setup.sh    # once: bench/peers/.venv (numpy<2 for MediaPipe)",
        command,
        "```",
        "",
        "Pose MAE and bias (mean signed error, prediction − annotation) in degrees and NME (mean landmark error / "
        "outer-eye-corner distance, %) over the faces each peer found; a face counts as found when a detection's "
        f"landmark box overlaps the annotated one with IoU ≥ {MIN_IOU}. ms = wall time per image (detection + "
        f"landmarks + pose of every face), best of {repeats} run(s), median over the images, after one warm-up "
        f"image; the machine is shared with other jobs (load average {load:.1f} at the start), so times are "
        "indicative.",
        "",
        "| peer | found | yaw | pitch | roll | **MAE** | bias yaw / pitch / roll | NME % | ms / image |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m, b = _pose_errors(r, samples)
        bias = " / ".join(_f(b[a], 1, "+") for a in ("yaw", "pitch", "roll"))
        lines.append(f"| {r.peer.name} | {len(r.faces)} / {n} ({n - len(r.faces)} missed) | {_f(m['yaw'])} | "
                     f"{_f(m['pitch'])} | {_f(m['roll'])} | **{_f(m['mean'])}** | {bias} | "
                     f"{_f(100 * _nme(r, samples))} | {_f(float(np.median(r.ms)), 1)} |")
    if facemtl_note:
        lines.append(f"| facemtl | {facemtl_note} | | | | | | | |")
    lines += ["", f"Same pose MAE on the {len(common)} images every peer above found:", "",
              "| peer | yaw | pitch | roll | **MAE** |", "|---|---|---|---|---|"]
    for r in results:
        m, _ = _pose_errors(r, samples, common)
        lines.append(f"| {r.peer.name} | {_f(m['yaw'])} | {_f(m['pitch'])} | {_f(m['roll'])} | **{_f(m['mean'])}** |")
    lines += ["", "Settings and Euler convention per peer (every peer's rotation is converted to facemtl's `R`, head "
              "to OpenCV camera, and its yaw/pitch/roll are those of `Pose_Para`: R = Rx(-pitch) Ry(yaw) Rz(roll)):", ""]
    for r in results:
        lines.append(f"* **{r.peer.name}**: {r.peer.settings}. {r.peer.euler}")
    lines += [
        "",
        "Notes:",
        "",
        "* Landmark-to-pose for every landmark peer: `facemtl.geometry.pnp.solve_pose` with `mean_face()` (ICT-FaceKit "
        "neutral at the 68 landmarks, aligned to the `Pose_Para` frontal; see `facemtl/assets/mean_face_68.json`) and "
        "`camera_matrix(w, h)` (focal = image width, centre of the image): the step of `landmarks_to_pose`, keeping "
        f"the matrix. Points: `{subset}`; no per-peer adjustment.",
        "* MediaPipe's 468 points → iBUG-68: the correspondence of Peizhi Yan's Mediapipe_2_Dlib_Landmarks "
        "(`mp2dlib.py`, 2024; one mesh vertex per point, or the mean of two), used as published. Its jaw points are "
        "fixed mesh vertices while dlib's follow the visible outline (as 300-W annotates it), so the two NMEs are "
        "only roughly comparable.",
        "* MediaPipe's own facial transformation matrix is not measured: it needs the tasks API `FaceLandmarker` "
        "and its `face_landmarker.task` bundle, which the mediapipe 0.10.21 wheel does not ship (neither does it "
        "ship `canonical_face_model.obj` / the geometry pipeline metadata); nothing is downloaded at run time.",
        "* AFLW2000-3D's ground truth is a 3DMM fit (pose and `pt3d_68`), not a manual annotation; NME is against "
        "the 2D projection of `pt3d_68`, whose jaw is the 3D model's jaw, not the visible outline.",
        DOC_END,
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace (or append) the peers section of ``path``, leaving the rest of the file as it is."""
    text = path.read_text() if path.is_file() else "# Benchmarks\n\n"
    if DOC_START in text and DOC_END in text:
        head, rest = text.split(DOC_START, 1)
        text = head + section.rstrip("\n") + rest.split(DOC_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "aflw2000-dev",
                        help="AFLW2000-3D folder (.jpg + .mat); default ../shared/data/aflw2000-dev")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    parser.add_argument("--threads", type=int, default=2, help="OpenCV / onnxruntime threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per image; the fastest counts (default 3)")
    parser.add_argument("--facemtl-model", type=Path, help="ONNX model for the facemtl row (default: the shipped one)")
    parser.add_argument("--subset", default="68", choices=sorted(POINT_SUBSETS),
                        help="landmarks used by PnP (facemtl.geometry.pnp.POINT_SUBSETS; default all 68)")
    parser.add_argument("--dlib-upsample", type=int, default=1, help="dlib HOG upsampling (dlib's example: 1)")
    parser.add_argument("--per-face", action="store_true",
                        help="also print every image's annotated pose and each peer's mean absolute error on it")
    args = parser.parse_args(argv)

    cv2.setNumThreads(args.threads)
    load = os.getloadavg()[0]
    every = read_aflw2000(args.data)
    samples = [s for s in every if (np.abs(s.pose) <= FILTER_DEG).all()]
    images = {Path(s.image_path).name: s.load_image() for s in samples}

    peers = [mediapipe_peer(False, args.subset), mediapipe_peer(True, args.subset),
             dlib_peer(args.dlib_upsample, args.subset)]
    ours = facemtl_peer(args.threads, args.facemtl_model)
    facemtl_note = None
    if ours is None:
        facemtl_note = "no default model yet (facemtl/assets/default.onnx)"
        print("facemtl: no default model yet")
    else:
        peers.append(ours)

    results = []
    for peer in peers:
        r = evaluate(peer, samples, images, args.repeats)
        m, _ = _pose_errors(r, samples)
        print(f"{peer.name}: found {len(r.faces)}/{len(samples)}, MAE yaw {m['yaw']:.2f} pitch {m['pitch']:.2f} "
              f"roll {m['roll']:.2f} mean {m['mean']:.2f}, NME {100 * _nme(r, samples):.2f}%, "
              f"{np.median(r.ms):.1f} ms/image", flush=True)
        results.append(r)

    if args.per_face:
        print(per_face_table(results, samples))
    command = shlex.join(["bench/peers/.venv/bin/python", "bench/peers/run_peers.py",
                          *(sys.argv[1:] if argv is None else argv)])
    section = report(results, samples, len(every), args.data, facemtl_note, command, args.threads, args.subset,
                     args.repeats, load)
    if args.no_write:
        print(section)
    else:
        write_section(args.doc, section)
        print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

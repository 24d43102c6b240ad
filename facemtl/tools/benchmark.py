"""Detector and pipeline figures: ``python -m facemtl.tools.benchmark {calibrate,recall,speed}``.

* ``calibrate``: fits :data:`facemtl.infer.detector.BOX_TO_LANDMARKS` (detector box -> tight
  68-landmark box) on dlib's annotated photos in ``format-samples/dlib-faces`` (not on the
  evaluation set).
* ``recall``: detector recall on ``aflw2000-dev`` (a face is found when a detection's IoU with
  the tight box of its 68 landmarks is at least 0.3; the dataset has one labelled face per
  image) and on ``photos`` (share of photos with at least one detection).
* ``speed``: milliseconds per 640x480 frame for detection alone and, with ``--model``, for the
  whole :class:`~facemtl.infer.FaceAnalyzer` (min / median / max over repeats); ``--split`` also
  prints where the whole frame's call goes: each network's onnxruntime run, and the rest.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from facemtl.infer.detector import CascadeDetector, create_detector
from facemtl.io import IMAGE_SUFFIXES, shared_dir
from facemtl.metrics.detection import iou



def _match(boxes: np.ndarray, gts: np.ndarray, threshold: float = 0.3) -> list[tuple[int, int]]:
    """(detection, ground truth) pairs: each detection with its best ground truth above ``threshold``."""
    if len(boxes) == 0 or len(gts) == 0:
        return []
    ov = iou(boxes, gts)
    best = ov.argmax(axis=1)
    return [(i, int(j)) for i, j in enumerate(best) if ov[i, j] >= threshold]


def calibrate(shared: Path) -> None:
    """Print the median detector-box -> landmark-box shift and scale per cascade (and dlib)."""
    from facemtl.data.dlib_xml import read_dlib_xml

    root = shared / "data" / "format-samples" / "dlib-faces"
    faces: dict[str, list[np.ndarray]] = {}
    for xml in ("training_with_face_landmarks.xml", "testing_with_face_landmarks.xml"):
        for s in read_dlib_xml(root / xml):
            lm = s.landmarks
            faces.setdefault(s.image_path, []).append(np.r_[np.nanmin(lm, 0), np.nanmax(lm, 0)])
    # Raw boxes at full resolution so that the fit does not depend on the detection scale.
    det = CascadeDetector(min_face=1e-6)
    raw: dict[str, list[list[float]]] = {"frontal": [], "profile": [], "dlib": []}
    dlib_det = create_detector("dlib") if "dlib" in _available() else None
    for path, gts in faces.items():
        image = cv2.imread(path)
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        w = grey.shape[1]
        found = {"frontal": [det._run(det.frontal_cascade, grey)[0]],
                 "profile": [det._run(det.profile_cascade, grey)[0]]}
        mirrored = det._run(det.profile_cascade, np.ascontiguousarray(grey[:, ::-1]))[0]
        # Mirror back, and mirror the box-to-landmark shift too (sign of x) by flipping the gt.
        flipped_gts = np.stack([w - 1 - np.array(gts)[:, 2], np.array(gts)[:, 1],
                                w - 1 - np.array(gts)[:, 0], np.array(gts)[:, 3]], 1)
        pairs = [(b - 0.5, np.array(gts), k) for k, bs in found.items() for b in bs]
        pairs.append((mirrored - 0.5, flipped_gts, "profile"))
        if dlib_det is not None:
            rects = dlib_det.detector.run(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), 1, 0.0)[0]
            b = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], float)
            pairs.append((b.reshape(-1, 4) - 0.5, np.array(gts), "dlib"))
        for boxes, g, kind in pairs:
            for i, j in _match(boxes, g):
                b, t = boxes[i], g[j]
                bw, bh = b[2] - b[0], b[3] - b[1]
                raw[kind].append([(t[0] + t[2] - b[0] - b[2]) / 2 / bw, (t[1] + t[3] - b[1] - b[3]) / 2 / bh,
                                  (t[2] - t[0]) / bw, (t[3] - t[1]) / bh])
    n = sum(len(v) for v in faces.values())
    print(f"{n} faces in {len(faces)} photos of {root}")
    for kind, rows in raw.items():
        if rows:
            med = np.median(np.array(rows), axis=0)
            print(f"{kind:8s} matched {len(rows):3d}: (dx, dy, sx, sy) = ({', '.join(f'{v:.3f}' for v in med)})")


def _available() -> list[str]:
    from facemtl.infer.detector import available_detectors

    return available_detectors()


def recall(shared: Path, detector: str, **kwargs) -> None:
    """Print the detector's recall on aflw2000-dev and photos (module docstring)."""
    from facemtl.data.mat3ddfa import read_aflw2000

    det = create_detector(detector, **kwargs)
    samples = read_aflw2000(shared / "data" / "aflw2000-dev")
    found, ious = 0, []
    for s in samples:
        boxes, _ = det(s.load_image())
        gt = np.r_[np.nanmin(s.landmarks, 0), np.nanmax(s.landmarks, 0)][None]
        best = float(iou(boxes, gt).max()) if len(boxes) else 0.0
        found += best >= 0.3
        ious.append(best)
    print(f"aflw2000-dev: {found}/{len(samples)} faces found (IoU >= 0.3 with the landmark box), "
          f"recall {found / len(samples):.3f}, median best IoU {statistics.median(ious):.2f}")
    photos = sorted(p for p in (shared / "data" / "photos").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    counts = [len(det(cv2.imread(str(p)))[0]) for p in photos]
    hit = sum(c > 0 for c in counts)
    print(f"photos: {hit}/{len(photos)} photos with >= 1 detection ({hit / len(photos):.3f}); "
          f"{sum(counts)} detections in all")


def _frame(shared: Path) -> np.ndarray:
    """A real 640x480 frame with one face (an aflw2000-dev image padded to 4:3 and resized)."""
    image = cv2.imread(str(sorted((shared / "data" / "aflw2000-dev").glob("*.jpg"))[0]))
    h, w = image.shape[:2]
    pad = (w * 4 // 3 - w) // 2 if w * 3 < h * 4 else 0
    image = cv2.copyMakeBorder(image, 0, 0, pad, pad, cv2.BORDER_REPLICATE)
    return cv2.resize(image, (640, 480), interpolation=cv2.INTER_AREA)


def _photo(shared: Path) -> np.ndarray:
    """The first LFW photo (250x250, one main face), its burned-in drawing inpainted."""
    from facemtl.synth.texture import remove_overlay

    return remove_overlay(cv2.imread(str(sorted((shared / "data" / "lfw").rglob("*.jpg"))[0])))


def _time(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - t))
    return out


class _TimedSession:
    """An onnxruntime session whose ``run`` calls are timed (ms, in ``times``); all else is the session's."""

    def __init__(self, session):
        self._session, self.times = session, []

    def run(self, *args, **kwargs):
        start = time.perf_counter()
        out = self._session.run(*args, **kwargs)
        self.times.append(1000 * (time.perf_counter() - start))
        return out

    def __getattr__(self, name):
        return getattr(self._session, name)


def split(analyzer, image: np.ndarray, repeats: int) -> dict[str, float]:
    """Median ms per ``analyzer(image)`` call: the whole call, each network's session runs
    (``detector``, ``main``, ``expression``, those it has), and ``rest`` (numpy, OpenCV, Python)."""
    owners = {"detector": analyzer.detector, "main": analyzer.model, "expression": analyzer.expression_model}
    timed = {k: _TimedSession(o.session) for k, o in owners.items() if hasattr(o, "session")}
    for key, session in timed.items():
        owners[key].session = session
    try:
        analyzer(image)  # warm-up
        whole, parts = [], {k: [] for k in timed}
        for _ in range(repeats):
            for session in timed.values():
                session.times.clear()
            start = time.perf_counter()
            analyzer(image)
            whole.append(1000 * (time.perf_counter() - start))
            for key, session in timed.items():
                parts[key].append(sum(session.times))
    finally:
        for key, session in timed.items():
            owners[key].session = session._session
    out = {"whole": statistics.median(whole), **{k: statistics.median(v) for k, v in parts.items()}}
    out["rest"] = statistics.median([w - sum(v[i] for v in parts.values()) for i, w in enumerate(whole)])
    return out


def speed(shared: Path, detector: str, model: str | None, threads: int, repeats: int, flip: bool = True,
          show_split: bool = False, **kwargs) -> None:
    """Print ms per 640x480 frame: detection, and the whole analyzer (``flip``: its flip averaging)
    when a model is given."""
    cv2.setNumThreads(threads)
    frame = _frame(shared)
    det = create_detector(detector, threads=threads, **kwargs)
    print(f"frame 640x480, {len(det(frame)[0])} face(s) detected, {threads} threads, {repeats} repeats")
    ms = _time(lambda: det(frame), repeats)
    print(f"detection ({detector}): min {min(ms):.1f} / median {statistics.median(ms):.1f} / max {max(ms):.1f} ms")
    if model:
        from facemtl.infer.analyzer import FaceAnalyzer

        analyzer = FaceAnalyzer(model, detector=det, threads=threads, flip=flip)
        ms = _time(lambda: analyzer(frame), repeats)
        print(f"full analyzer (flip averaging {'on' if flip else 'off'}): min {min(ms):.1f} / "
              f"median {statistics.median(ms):.1f} / max {max(ms):.1f} ms")
        if show_split:
            print("  where the call goes (medians): " + ", ".join(
                f"{k} {v:.2f} ms" for k, v in split(analyzer, frame, repeats).items()))
        boxes = det(frame)[0]
        for refine in (True, False):
            ms = _time(lambda: analyzer(frame, boxes=boxes, refine=refine), repeats)
            print(f"analyzer on given boxes, refine={refine}: min {min(ms):.1f} / median {statistics.median(ms):.1f} / "
                  f"max {max(ms):.1f} ms")
        photo = _photo(shared)
        ms = _time(lambda: analyzer(photo), repeats)
        print(f"full analyzer, {photo.shape[1]}x{photo.shape[0]} LFW photo ({len(analyzer(photo))} face(s)): "
              f"min {min(ms):.1f} / median {statistics.median(ms):.1f} / max {max(ms):.1f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["calibrate", "recall", "speed"])
    parser.add_argument("--shared", type=Path, default=None,
                        help="root of the shared data (default $FACEMTL_SHARED or the checkout's ../shared)")
    parser.add_argument("--detector", default="mos")
    parser.add_argument("--min-face", type=float,
                        help="smallest face sought: opencv, a fraction of the shorter image side; mos, that or "
                             "pixels (>= 1), and its canvas shrinks to match")
    parser.add_argument("--canvas", type=int, help="mos detector: the longer side images are brought to (default 416)")
    parser.add_argument("--scale-factor", type=float, help="opencv detector: pyramid step")
    parser.add_argument("--profile", choices=["always", "fallback", "never"], help="opencv detector: profile cascade")
    parser.add_argument("--model", help="ONNX model for the full-pipeline timing")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                        help="the analyzer's flip averaging (default on, as FaceAnalyzer)")
    parser.add_argument("--split", action="store_true",
                        help="with --model: also time each network's runs inside the frame's call")
    args = parser.parse_args(argv)
    shared = args.shared or shared_dir()
    kwargs = {k: v for k, v in (("min_face", args.min_face), ("canvas", args.canvas),
                                ("scale_factor", args.scale_factor), ("profile", args.profile)) if v is not None}
    if args.what == "calibrate":
        calibrate(shared)
    elif args.what == "recall":
        recall(shared, args.detector, **kwargs)
    else:
        speed(shared, args.detector, args.model, args.threads, args.repeats, args.flip, args.split, **kwargs)


if __name__ == "__main__":
    main()

"""Choose and check ``FaceAnalyzer``'s ``min_presence``, ``max_uncertainty`` and ``max_flip_gap``: drop a
detection when the main model's face presence on it is below a limit, or its mean pose uncertainty, or
the gap between its landmarks read on the crop and on the mirrored crop (flip averaging), is above one
(the model reads no face there).

For every detection of the shipped MOS detector (its own threshold) both are measured with the
analyzer's defaults (flip averaging on); a detection is a true face when its box overlaps an
annotated one with IoU >= 0.3. The limits are chosen on the held-out real sets only (300-W val, LFW
val, their mosaics, the turned 300-W val faces): first the largest multiple of 0.05 for the presence
(a model without it: 0) that keeps at least ``--keep`` of the true faces of each, then, with it, the
smallest multiple of 0.5 deg for the uncertainty that still does, then, with both, the smallest
multiple of 0.005 crop sides for the flip gap. dlib's VOC photos, aflw2000-dev, the renders and
``photos/`` are reported at those limits, never chosen on. ``--limits U G P`` reports every set at
given limits instead (e.g. the shipped ones) and says what the rule would choose::

    python scripts/plausibility_filter.py --turned runs/300wlp18/val --scenes runs/mos-scenes/val

``--no-flip`` measures one-pass readings (no flip gap: that limit is not chosen and passes every box),
``--min-face`` the analyzer's (near faces only): how the shipped limits behave in the fastest setting.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_detector import _lm_box, eval_sets, load_item  # noqa: E402

from facemtl.contract import PRESENCE  # noqa: E402
from facemtl.data.registry import load_dataset  # noqa: E402
from facemtl.infer.analyzer import FaceAnalyzer  # noqa: E402
from facemtl.io import shared_dir  # noqa: E402
from facemtl.metrics.detection import iou  # noqa: E402

CHOSEN_ON = ("300-W held-out", "LFW held-out", "mosaics", "turned 300-W val")


def measure(analyzer: FaceAnalyzer, items, clean: bool) -> list[tuple[float, float, bool, str, float]]:
    """``(mean pose_std, flip gap, is a true face, image, presence)`` of every detection in ``items`` (images by
    ``bench_detector.load_item``: ``clean`` for the LFW sets, whose annotation is drawn in)."""
    rows = []
    for path, gts, _ in items:
        name = "" if isinstance(path, np.ndarray) else Path(path).name
        faces = analyzer(load_item(path, clean))
        for f in faces:
            true = bool(len(gts) and (iou(f.box[None], gts) >= 0.3).any())
            presence = 1.0 if f.presence is None else float(f.presence)
            gap = math.nan if f.flip_gap is None else float(f.flip_gap)  # one pass: not measured
            rows.append((float(np.mean(f.pose.uncertainty)), gap, true, name, presence))
    return rows


def first(grid: np.ndarray, rows: dict[str, list], kept, keep: float) -> float:
    """The first limit of ``grid`` for which ``kept(row, limit)`` holds for at least ``keep`` of the
    true faces of every chosen set (the grid ends where every true face is kept)."""
    return next(t for t in grid if all(np.mean([kept(r, t) for r in rows[name] if r[2]]) >= keep
                                       for name in CHOSEN_ON if name in rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=None)
    ap.add_argument("--model", type=Path, default=None,
                    help="the main model's ONNX file (default: the shipped one), e.g. a new one before it ships")
    ap.add_argument("--detector", default="mos", help="the detector (default the shipped MOS; 'mos:FILE.onnx' another)")
    ap.add_argument("--canvas", type=int, default=None, help="MOS canvas side (default the detector's)")
    ap.add_argument("--turned", type=Path, help="held-out turned 300-W faces (facemtl profile ... val)")
    ap.add_argument("--scenes", type=Path, help="held-out rendered scenes (reported)")
    ap.add_argument("--keep", type=float, default=0.995, help="share of each held-out set's true faces to keep")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                    help="the analyzer's flip averaging (default on; off: one pass, no flip gap)")
    ap.add_argument("--min-face", type=float, default=0.0, help="the analyzer's min_face (default 0: all faces)")
    ap.add_argument("--limits", type=float, nargs=3, metavar=("U", "G", "P"),
                    help="report at these limits (uncertainty deg, flip gap, presence) instead of the chosen ones")
    args = ap.parse_args(argv)
    shared = args.shared or shared_dir()
    analyzer = FaceAnalyzer(args.model, detector=args.detector, canvas=args.canvas, threads=args.threads,
                            max_uncertainty=math.inf, max_flip_gap=math.inf, min_presence=0.0,
                            flip=args.flip, min_face=args.min_face)
    sets = eval_sets(shared, args.scenes)
    if args.turned:
        sets["turned 300-W val"] = [(s.image_path, _lm_box(s.landmarks)[None], np.zeros(1, bool))
                                    for s in load_dataset("synth", args.turned)]
    sets["photos/ (no labels)"] = [(p, np.zeros((0, 4)), np.zeros(0, bool))
                                   for p in sorted((shared / "data" / "photos").glob("*.jpg"))]
    rows = {name: measure(analyzer, items, clean=name.startswith("LFW")) for name, items in sets.items()}
    # Each grid runs up to the largest true-face value of the chosen sets, where every true face is
    # kept, so the search always ends.
    true = [r for name in CHOSEN_ON if name in rows for r in rows[name] if r[2]]
    # A model without the output reads every box as 1.0; its limit is 0, as the docstring says.
    p_min = (first(np.round(np.arange(0.95, -0.01, -0.05), 2), rows, lambda r, t: r[4] >= t, args.keep)
             if PRESENCE in analyzer.model.outputs else 0.0)
    u_max = first(np.arange(4.0, max(4.0, max(r[0] for r in true)) + 0.5, 0.5), rows,
                  lambda r, t: r[4] >= p_min and r[0] <= t, args.keep)
    g_max = math.inf if not args.flip else first(
        np.arange(0.01, max(0.01, max(r[1] for r in true)) + 0.005, 0.005), rows,
        lambda r, t: r[4] >= p_min and r[0] <= u_max and r[1] <= t, args.keep)
    print(f"limits: presence {p_min:.2f} (the largest), uncertainty {u_max:.1f} deg, flip gap {g_max:.3f} (the "
          f"smallest) keeping >= {100 * args.keep:.1f} % of the true faces of "
          f"{', '.join(n for n in CHOSEN_ON if n in rows)}")
    if args.limits:
        u_max, g_max, p_min = args.limits
        print(f"reported at the given limits: uncertainty {u_max:.1f} deg, flip gap {g_max:.3f}, presence {p_min:.2f}")

    def passes(x) -> bool:
        return x[4] >= p_min and x[0] <= u_max and not x[1] > g_max  # an unmeasured gap (NaN) passes

    for name, r in rows.items():
        u, gap, presence = (np.array([x[i] for x in r]) for i in (0, 1, 4))
        is_true = np.array([x[2] for x in r], bool)
        by_p = presence >= p_min
        kept = np.array([passes(x) for x in r], bool)
        role = "chosen on" if name in CHOSEN_ON else "reported"
        spread = "" if not is_true.any() else (
            f"; true faces' presence median {np.median(presence[is_true]):.3f}, min {presence[is_true].min():.3f}, "
            f"uncertainty median {np.median(u[is_true]):.2f}, max {u[is_true].max():.2f}, "
            f"flip gap median {np.median(gap[is_true]):.4f}, max {gap[is_true].max():.4f}")
        print(f"  {name:22s} ({role}): true faces {int((is_true & kept).sum())}/{int(is_true.sum())} kept "
              f"({int((is_true & by_p).sum())} by the presence alone); other boxes {int((~is_true & kept).sum())}/"
              f"{int((~is_true).sum())} ({int((~is_true & by_p).sum())}){spread}")
        shown = [x for x in r if not passes(x)] if name.startswith("photos") else (
            [x for x in r if not x[2]] if name.startswith("dlib VOC") else [])  # VOC: its few false boxes
        for x in sorted(shown, key=lambda x: x[3]):
            print(f"    {'kept' if passes(x) else 'dropped'} in {x[3]}: presence {x[4]:.3f}, mean pose uncertainty "
                  f"{x[0]:.2f}, flip gap {x[1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

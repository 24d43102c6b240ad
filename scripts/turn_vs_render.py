"""The same ICT head rendered at a yaw, against its frontal render turned to that yaw as `facemtl
profile` turns photos: how a model reads each, and what the turned view's label must be.

The turn is made with the head's exact shape, pose and camera (no fitting error), so any difference
between the two readings comes from how a turned view is labelled and drawn. Labels: "camera" is the
head's camera-frame rotation (the turned views' labels before 2026-12-07), "ray" the rotation seen
along the ray through the face (`facemtl.geometry.line_of_sight`, what a crop shows and what
weak-perspective labels such as AFLW2000's give). Outward error: + when the model reads |yaw| larger.

    python scripts/turn_vs_render.py --n 24 [--model facemtl/assets/default.onnx]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from facemtl.contract import model_reading
from facemtl.evaluate.protocol import predict_samples
from facemtl.geometry.rotations import matrix_to_euler
from facemtl.io import shared_dir
from facemtl.synth.config import SynthConfig, sample_rng
from facemtl.synth.facemodel import FaceModel
from facemtl.synth.fit import FitResult
from facemtl.synth.labels import FaceLabels
from facemtl.synth.person import sample_person
from facemtl.synth.profile import profile_photo, seen_along_the_ray
from facemtl.synth.render import render_sample
from facemtl.synth.texture import photo_texture
from facemtl.tools.eval import load_predictor

YAWS = (30, 45, 60, 75)
PITCHES = (-20, -10, 10, 20)


def exact_fit(labels: FaceLabels, config: SynthConfig, seed: int, index: int, model: FaceModel) -> FitResult:
    """The render's own head as a landmark fit: its person's shape (the render's first draw), pose and camera."""
    shape = sample_person(int(sample_rng(seed, index).integers(config.n_identities)), config.identity_modes).shape
    K = labels.camera
    fit = FitResult(rotation=labels.rotation, translation=labels.translation, focal=float(K[0, 0]),
                    center=K[:2, 2].copy(), identity=shape, expression=labels.expr_weights,
                    landmark_vertex=model.landmark_index.copy(), errors=np.zeros(68),
                    image_size=(config.size, config.size))
    drift = np.abs(fit.project(fit.vertices(model, index=model.landmark_index)) - labels.landmarks).max()
    assert drift < 1e-3, f"render {index}: the rebuilt head is not the rendered one ({drift:.3g} px)"
    return fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=24, help="heads (default 24)")
    parser.add_argument("--model", type=Path, default=None, help="ONNX or checkpoint (default: the shipped model)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    base = dict(size=192, pitch_sd=8.0, roll_sd=5.0, p_occluder=0.0, p_black_border=0.0, p_low_res=0.0, p_blur=0.0,
                p_grey=0.0, textures=str(shared_dir() / "data" / "lfw"), p_photo_texture=1.0,
                face_frac=(0.40, 0.45), distance_mm=(900.0, 1100.0))
    frontal_config = SynthConfig(yaw_range=(0.0, 0.0), **base)
    model = FaceModel.load()
    rows: dict[tuple[str, int], list] = {}
    pitch_stretch = []
    for i in range(args.n):
        sign = 1 if i % 2 == 0 else -1
        image0, lab0 = render_sample(sample_rng(args.seed, i), frontal_config)
        fit = exact_fit(lab0, frontal_config, args.seed, i, model)
        texture = photo_texture(image0, fit, model, soft_seams=True)
        for yaw in YAWS:
            image, lab = render_sample(sample_rng(args.seed, i), SynthConfig(yaw_range=(sign * yaw,) * 2, **base))
            turned, t_lab = profile_photo(image0, fit, sign * yaw - fit.pose[0], model, texture)
            camera = t_lab.rotation @ fit.rotation.T @ lab0.rotation
            rows.setdefault(("rendered, ray", yaw), []).append(seen_along_the_ray(lab).to_sample(image))
            rows.setdefault(("turned, camera", yaw), []).append(
                replace(t_lab, rotation=camera, pose=matrix_to_euler(camera)).to_sample(turned))
            rows.setdefault(("turned, ray", yaw), []).append(seen_along_the_ray(t_lab, camera).to_sample(turned))
        for pitch in PITCHES:
            _, t_lab = profile_photo(image0, fit, 0.0, model, texture, delta_pitch=pitch)
            camera = t_lab.rotation @ fit.rotation.T @ lab0.rotation
            pitch_stretch.append((pitch, seen_along_the_ray(t_lab, camera).pose[1] - matrix_to_euler(camera)[1]))

    predict, info = load_predictor(args.model, 2)
    predict = model_reading(predict, True)
    print(f"model {info['model']}, {args.n} heads; outward yaw error (+ = read more turned), mean (sd)")
    print("| yaw | label \\|yaw\\| camera / ray (turned) | rendered, ray label | turned, camera label | turned, ray label |")
    print("|---|---|---|---|---|")
    for yaw in YAWS:
        cells, labels = [], []
        for name in ("rendered, ray", "turned, camera", "turned, ray"):
            samples = rows[(name, yaw)]
            gt = np.stack([s.pose for s in samples])
            read = predict_samples(predict, samples, info["input_size"], info["crop_scale"])["pose"]
            out = np.sign(gt[:, 0]) * (read[:, 0] - gt[:, 0])
            cells.append(f"{out.mean():+.2f} ({out.std():.1f})")
            labels.append(np.abs(gt[:, 0]).mean())
        print(f"| {yaw} | {labels[1]:.1f} / {labels[2]:.1f} | " + " | ".join(cells) + " |")
    p = np.array(pitch_stretch)
    slope = np.polyfit(p[:, 0], p[:, 1], 1)[0]
    print(f"pitch turns {PITCHES}: the ray label adds {100 * slope:.1f} % of the turn to the camera label")


if __name__ == "__main__":
    main()

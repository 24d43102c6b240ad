"""Compute facemtl's mean 3D face (68 x 3, mm) from ICT-FaceKit Light, aligned to the Pose_Para frame.

    python scripts/compute_mean_face.py [--ict PATH.npz] [--lp-dir DIR] [--out facemtl/assets/mean_face_68.npy]

1. Mean shape: ICT's identity weights are N(0, 1), so its ``neutral`` mesh is the mean face. Its
   68 landmark vertices (``landmarks68``) are taken from centimetres, ICT axes (x toward the
   subject's left, y up, z toward the viewer) to millimetres in facemtl's head frame (x the
   same, y down, z toward the back of the head): ``head = diag(10, -10, -10) @ ict``, a 180 deg
   turn about x. The origin is the **centroid of the 68 points**.

2. Frame alignment: ICT's "frontal" is not exactly the 300W-LP / AFLW2000 ``Pose_Para``
   frontal. Both models are left-right symmetric about their x = 0 plane, so the offset is a
   rotation about x, a pure pitch. It is fitted on the 300W-LP training-format samples
   (``--lp-dir``, ``*.mat`` with ``pt2d`` and ``Pose_Para``; never AFLW2000, which is kept for
   evaluation): 3DDFA made ``pt2d`` by projecting its fitted 3D face orthographically with the
   ``Pose_Para`` rotation, so ``pt2d ~ s * (R_gt @ R_off @ (X + expression))[:2] + t`` with
   ``R_gt`` known. Free per sample: scale, translation and the weights (in [0, 1]) of ICT's
   smile blendshapes (mouthSmile, cheekSquint, jawOpen: the shared sample smiles broadly with
   an open mouth). Points: nose, eyes and outer lips (27-59); brows, jaw contour and inner lips
   are left out (expression- and annotation-dependent). The offset is the median over samples.

   Result with the one shared sample (IBUG_image_008_1_0): ``R_off = euler_to_matrix([0, -2.87, 0])``,
   i.e. ICT's frontal is pitched about 2.9 deg up relative to Pose_Para's; PnP with the
   unaligned face reads pitch about 2.9 deg too low. One face is a weak estimate: dropping one
   point at a time gives -3.5 to -2.4 deg, and other point sets / expression models give
   +0.2 (rigid nose and eye corners only), -1.9 (plus mouth corners) and -9.3 deg (27-59
   without the smile model, which the smile drags); all are printed. The mean face is stored rotated by ``R_off``
   about its centroid, so that PnP with it returns ``Pose_Para`` angles directly.

Writes the (68, 3) float64 table to ``--out`` and a ``.json`` beside it describing it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import scipy.io as sio
from scipy.optimize import least_squares

from facemtl.geometry.rotations import euler_to_matrix, matrix_to_euler, pose_para_to_ypr, rot_x

REPO = Path(__file__).resolve().parents[1]
ICT = REPO.parent / "shared" / "facemodels" / "ict-facekit" / "ict_facekit_light.npz"
LP_DIR = REPO.parent / "shared" / "data" / "format-samples" / "300w-lp"
OUT = REPO / "facemtl" / "assets" / "mean_face_68.npy"

ICT_TO_HEAD_MM = np.diag([10.0, -10.0, -10.0])
FIT_POINTS = list(range(27, 60))  # nose 27-35, eyes 36-47, outer lips 48-59
SMILE = ("mouthSmile_L", "mouthSmile_R", "cheekSquint_L", "cheekSquint_R", "jawOpen")


def ict_landmarks(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """ICT neutral 68 landmarks (68, 3) and expression deltas (E, 68, 3), mm, head frame, centred."""
    d = np.load(path)
    lm = d["landmarks68"]
    mean = d["neutral"][lm].astype(np.float64) @ ICT_TO_HEAD_MM
    expr = d["expr_deltas"][:, lm].astype(np.float64) @ ICT_TO_HEAD_MM
    return mean - mean.mean(axis=0), expr, [str(n) for n in d["expr_names"]]


def fit_pitch_offset(mean: np.ndarray, expr: np.ndarray, pt2d: np.ndarray, R_gt: np.ndarray,
                     points: list[int]) -> tuple[float, float, np.ndarray]:
    """Pitch offset (deg, ypr convention), rms residual (px) and expression weights for one sample.

    Model: ``pt2d[points] ~ s * (R_gt @ R_off @ (mean + w @ expr))[:2] + t``,
    ``R_off = euler_to_matrix([0, pitch, 0]) = rot_x(-pitch)``, ``w`` in [0, 1].
    """
    X, E, target = mean[points], expr[:, points], pt2d[points]

    def residual(p: np.ndarray) -> np.ndarray:
        shape = X + np.tensordot(p[4:], E, axes=1)
        proj = np.exp(p[1]) * (shape @ (R_gt @ rot_x(-np.deg2rad(p[0]))).T)[:, :2] + p[2:4]
        return (proj - target).ravel()

    scale0 = np.ptp(target, axis=0).max() / np.ptp(X, axis=0).max()
    p0 = np.r_[0.0, np.log(scale0), target.mean(axis=0), np.full(len(E), 0.1)]
    lower = np.r_[-np.inf, -np.inf, -np.inf, -np.inf, np.zeros(len(E))]
    upper = np.r_[np.inf, np.inf, np.inf, np.inf, np.ones(len(E))]
    r = least_squares(residual, p0, bounds=(lower, upper))
    return float(r.x[0]), float(np.sqrt(np.mean(r.fun ** 2))), r.x[4:]


def read_300wlp(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``pt2d`` (68, 2) and the ``Pose_Para`` rotation of a 300W-LP ``.mat``."""
    m = sio.loadmat(str(path))
    if "pt2d" not in m or "Pose_Para" not in m or m["pt2d"].shape != (2, 68):
        raise ValueError(f"{path}: expected pt2d (2, 68) and Pose_Para (300W-LP format)")
    return m["pt2d"].T.astype(np.float64), euler_to_matrix(pose_para_to_ypr(m["Pose_Para"].ravel()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ict", type=Path, default=ICT)
    parser.add_argument("--lp-dir", type=Path, default=LP_DIR, help="300W-LP .mat samples for the frame offset")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    mean, expr_all, names = ict_landmarks(args.ict)
    expr = expr_all[[names.index(n) for n in SMILE]]
    reference = args.ict.parent / "mean68_mm_xright_ydown_zaway.npy"
    if reference.is_file():  # an independent conversion of the same mesh: only a check
        ref = np.load(reference)
        print(f"max |ours - shared reference| after centring: {np.abs(ref - ref.mean(0) - mean).max():.2e} mm")

    mats = sorted(args.lp_dir.glob("*.mat"))
    if not mats:
        raise SystemExit(f"{args.lp_dir}: no 300W-LP .mat samples to fit the frame offset on")
    offsets = []
    for path in mats:
        pt2d, R_gt = read_300wlp(path)
        pitch, rms, w = fit_pitch_offset(mean, expr, pt2d, R_gt, FIT_POINTS)
        loo = [fit_pitch_offset(mean, expr, pt2d, R_gt, [q for q in FIT_POINTS if q != p])[0] for p in FIT_POINTS]
        print(f"{path.name}: pitch offset {pitch:+.2f} deg, rms {rms:.2f} px, "
              f"weights {dict(zip(SMILE, np.round(w, 2).tolist()))}, leave-one-point-out {min(loo):+.2f}..{max(loo):+.2f}")
        # Sensitivity to the modelling choices (not used): other point sets, no expression model.
        rigid = [27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45]
        for label, pts, e in (("rigid nose + eye corners, no expression", rigid, expr[:0]),
                              ("27-59, no expression", FIT_POINTS, expr[:0]),
                              ("nose + eye corners + mouth corners, smile", rigid + [48, 54], expr)):
            print(f"    variant {label}: {fit_pitch_offset(mean, e, pt2d, R_gt, pts)[0]:+.2f} deg")
        offsets.append(pitch)
    pitch = float(np.median(offsets))
    R_off = euler_to_matrix(np.array([0.0, pitch, 0.0]))
    aligned = mean @ R_off.T
    print(f"frame offset R_off = euler_to_matrix([0, {pitch:+.3f}, 0]) "
          f"(ypr {np.round(matrix_to_euler(R_off), 3)}), from {len(offsets)} sample(s)")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, aligned)
    meta = {
        "shape": [68, 3],
        "units": "mm",
        "frame": "facemtl head frame: x toward the image right for a frontal face (subject's left), y down, "
                 "z from the face toward the back of the head",
        "origin": "centroid of the 68 points",
        "order": "iBUG-68, 0-based",
        "source": "ICT-FaceKit Light neutral mesh (MIT) at its landmarks68 vertices; head = diag(10,-10,-10) @ ict",
        "alignment_ypr_deg": [0.0, round(pitch, 4), 0.0],
        "alignment": "stored = R_off @ unaligned (about the centroid), R_off = euler_to_matrix(alignment_ypr_deg): "
                     "rotates ICT's frontal onto the 300W-LP/AFLW2000 Pose_Para frontal",
        "alignment_fit": f"pitch only (both models are left-right symmetric), orthographic 3DDFA projection with the "
                         f"known Pose_Para rotation, points 27-59, ICT smile blendshapes {list(SMILE)} free in [0,1], "
                         f"on {[p.name for p in mats]}",
        "script": "scripts/compute_mean_face.py",
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()

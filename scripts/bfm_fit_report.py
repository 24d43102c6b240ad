"""How good are the pose labels of ``facemtl profile``: the BFM 68-landmark fit where the pose is known.

Prints (measurement only; nothing here is tuned on AFLW2000):

* ``ict-vs-bfm``: the ICT head's 68 landmarks (facemtl's head frame) aligned to the BFM mean face by
  a model-to-model similarity fit (no images), and by the same fit with the BFM's 40 identity and
  10 expression components free: the rotation between the two frames and the residual in mm;
* ``renders``: the fit on N photo-textured renders' exact landmarks (the ICT head's fixed vertices),
  MAE and mean signed error per angle against the render's exact pose;
* ``aflw2000``: the fit on an AFLW2000-3D folder's own 2-D landmarks (``pt3d_68``'s projection, the
  BFM's fixed vertices) against ``Pose_Para``;
* ``300w``: on the 300-W photos' manual landmarks, the BFM fit's pose against the ICT fit's (the
  engine's own fit with contour marching), the mean difference per angle; and the BFM fit with
  and without jaw marching (:class:`facemtl.synth.bfm.ContourMarch`) by fitted |yaw|: the mean
  residual of the jaw and of the inner points (mm), and how far marching moves yaw (outward, i.e.
  toward larger |yaw|) and pitch;
* ``turned`` (with ``--turned``, a ``facemtl profile`` folder such as ``runs/300wlp18m/val``): the
  fit on the annotator-style points of views turned from near-frontal photos (|yaw| < 8 deg, whose
  labels are the exact turn of a frontal fit), with and without marching, by true |yaw|: yaw error
  outward and pitch bias.

    python scripts/bfm_fit_report.py --shared ../shared --renders 200 --photos 1300 --turned runs/300wlp18m/val
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facemtl.data.registry import load_dataset
from facemtl.geometry.rotations import geodesic_distance, matrix_to_euler
from facemtl.synth.bfm import BFM68, ContourMarch, fit_bfm
from facemtl.synth.facemodel import FaceModel, kabsch


def report(name: str, pred: np.ndarray, true: np.ndarray) -> None:
    e = pred - true
    print(f"{name:28s} n={len(e):4d}  MAE yaw/pitch/roll {np.abs(e).mean(0).round(2).tolist()}  "
          f"bias {e.mean(0).round(2).tolist()}")


def model_to_model(bfm: BFM68, ict: FaceModel) -> None:
    src = ict.landmarks_3d().astype(np.float64)
    R = kabsch(src, bfm.mean)
    a, b = src - src.mean(0), bfm.mean - bfm.mean.mean(0)
    s = np.sum(b * (a @ R.T)) / np.sum(a * a)
    rms = np.sqrt(np.mean(np.sum((s * a @ R.T - b) ** 2, 1)))
    print(f"ict-vs-bfm mean faces: rotation {geodesic_distance(R, np.eye(3)):.2f} deg "
          f"(yaw/pitch/roll {matrix_to_euler(R).round(2).tolist()}), scale {s:.3f}, RMS residual {rms:.2f} mm")
    # BFM shape free: the ICT landmarks seen frontally by an orthographic camera of scale 1 px/mm.
    fit = fit_bfm(src[:, :2] - src[:, :2].mean(0), bfm, sigma=1.0, contour_weight=1.0)
    print(f"ict-vs-bfm, BFM shape fitted to the ICT landmarks (2-D, frontal): rotation "
          f"{geodesic_distance(fit.rotation, np.eye(3)):.2f} deg "
          f"(yaw/pitch/roll {fit.pose.round(2).tolist()}), residual {np.mean(fit.errors):.2f} mm")


def renders(bfm: BFM68, n: int, shared: Path) -> None:
    from facemtl.synth.render import SynthConfig, render_sample, sample_rng

    config = SynthConfig(size=160, textures=str(shared / "data" / "lfw"), shared=str(shared))
    pred, true = [], []
    for i in range(n):
        _, lab = render_sample(sample_rng(20261206, i), config)
        if abs(lab.pose[0]) > 90:
            continue
        pred.append(fit_bfm(lab.landmarks, bfm).pose)
        true.append(lab.pose)
    pred, true = np.array(pred), np.array(true)
    report("renders, all", pred, true)
    near = np.abs(true[:, 0]) <= 30
    report("renders, |yaw| <= 30", pred[near], true[near])


def aflw2000(bfm: BFM68, root: Path) -> None:
    samples = [s for s in load_dataset("aflw2000", root) if np.abs(s.pose).max() <= 99]
    pred = np.array([fit_bfm(s.landmarks, bfm).pose for s in samples])
    report("aflw2000 own 2-D landmarks", pred, np.array([s.pose for s in samples]))


def photos_300w(bfm: BFM68, ict: FaceModel, folder: Path, n: int) -> None:
    from facemtl.synth.fit import fit_landmarks

    samples = [s for s in load_dataset("300w", folder) if s.landmarks is not None][:n]
    b, c = [], []
    for s in samples:
        image = s.load_image()
        b.append(fit_bfm(s.landmarks, bfm).pose)
        c.append(fit_landmarks(s.landmarks, (image.shape[1], image.shape[0]), ict).pose)
    report(f"300w {folder.name}: BFM vs ICT fit", np.array(b), np.array(c))


def by_yaw(name: str, yaw: np.ndarray, columns: dict[str, np.ndarray], bins=((0, 15), (15, 30), (30, 45),
                                                                         (45, 60), (60, 75), (75, 99))) -> None:
    """One line per |yaw| bin: the mean of each column over the bin."""
    for lo, hi in bins:
        m = (np.abs(yaw) >= lo) & (np.abs(yaw) < hi)
        if m.any():
            print(f"{name} |yaw| {lo:2d}-{hi:2d} n={m.sum():4d}  "
                  + "  ".join(f"{k} {v[m].mean():+.2f}" for k, v in columns.items()))


def photos_marching(bfm: BFM68, march: ContourMarch, folders: list[Path], n: int) -> None:
    rows = []
    for s in [s for f in folders for s in load_dataset("300w", f) if s.landmarks is not None][:n]:
        fixed, slid = fit_bfm(s.landmarks, bfm), fit_bfm(s.landmarks, bfm, contour=march)
        rows.append(np.r_[fixed.pose, slid.pose, [np.nanmean(f.errors[a:b]) / f.scale
                                                  for f in (fixed, slid) for a, b in ((0, 17), (17, 68))]])
    r = np.array(rows)
    out = np.sign(r[:, 3])
    by_yaw("300w marching (fitted yaw)", r[:, 3], {
        "jaw fixed": r[:, 6], "jaw marching": r[:, 8], "inner fixed": r[:, 7], "inner marching": r[:, 9],
        "yaw moved outward": out * (r[:, 3] - r[:, 0]), "pitch moved": r[:, 4] - r[:, 1]},
           ((0, 10), (10, 20), (20, 30), (30, 45), (45, 99)))


def turned(bfm: BFM68, march: ContourMarch, folder: Path, n: int) -> None:
    photo = lambda s: Path(s.image_path).stem.split("_")[0]  # noqa: E731  PPPPP_VV: view VV of photo PPPPP
    frontal = {photo(s) for s in load_dataset("synth", folder, max_view=0) if abs(s.pose[0]) < 8}
    samples = [s for s in load_dataset("synth", folder) if s.pose is not None and photo(s) in frontal][:n]
    true = np.array([s.pose for s in samples])
    out = np.sign(true[:, 0])
    for name, kw in (("fixed jaw", {}), ("jaw marching", {"contour": march})):
        e = np.array([fit_bfm(s.landmarks, bfm, **kw).pose for s in samples]) - true
        by_yaw(f"turned, {name:12s}", true[:, 0], {"yaw outward": out * e[:, 0], "|yaw|": np.abs(e[:, 0]),
                                                    "pitch": e[:, 1], "|pitch|": np.abs(e[:, 1])})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", default="../shared", help="the shared folder")
    p.add_argument("--renders", type=int, default=200, help="renders to fit (default 200)")
    p.add_argument("--photos", type=int, default=200, help="300-W photos to fit with both models (default 200)")
    p.add_argument("--turned", default=None, help="a facemtl profile folder (e.g. runs/300wlp18m/val): the fit on its "
                                                  "views turned from near-frontal photos")
    p.add_argument("--turned-n", type=int, default=600, help="views of --turned to fit (default 600)")
    args = p.parse_args()
    shared = Path(args.shared)
    bfm, ict = BFM68.load(shared / "facemodels" / "bfm"), FaceModel.load()
    model_to_model(bfm, ict)
    renders(bfm, args.renders, shared)
    aflw2000(bfm, shared / "data" / "aflw2000-dev")
    photos_300w(bfm, ict, shared / "data" / "300w" / "helen-train", args.photos)
    march = ContourMarch.load(ict)
    photos_marching(bfm, march, [shared / "data" / "300w" / k for k in ("helen-train", "afw")], args.photos)
    if args.turned:
        turned(bfm, march, Path(args.turned), args.turned_n)


if __name__ == "__main__":
    main()

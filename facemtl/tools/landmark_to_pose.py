"""``facemtl study landmark-to-pose``: how well a mean face turns landmarks into head pose (Hopenet §4.2).

Pose is solved with PnP (:func:`facemtl.geometry.pnp.landmarks_to_pose`) from **ground-truth**
2D landmarks and facemtl's mean 3D face, with a pinhole camera of focal length = image width
and the principal point at the image centre. Four experiments, each reporting the mean
absolute error of yaw, pitch and roll and their mean (degrees):

* points: the point subsets of :data:`~facemtl.geometry.pnp.POINT_SUBSETS` (5 ... 68 points;
  Hopenet Fig. 3);
* jitter: Gaussian noise of ``sigma`` pixels added to every landmark, ``--repeats`` seeded
  draws per sigma (Hopenet Fig. 4); the same unit draws are scaled for every sigma;
* stretch: the mean face's width (x) or height (y) scaled by ``1 + s`` (Hopenet Fig. 5);
* alignment: for every subset, the mean face as stored (rotated onto the ``Pose_Para``
  frontal) versus ICT's own frontal (see ``scripts/compute_mean_face.py``), with the mean
  signed error (bias).

Data: ``--root`` is an AFLW2000-3D-format folder (``.mat`` + image; landmarks ``pt3d_68[:2]``,
pose ``Pose_Para``), evaluated with the standard protocol: images whose ground-truth angle
is outside [-99, 99] deg are dropped. Without ``--root`` the study runs on a **generated**
set, so it works on any machine: the shipped mean face with a per-face identity-like
perturbation (width, height and depth scaled by N(1, 0.07) each, plus N(0, 2 mm) per point),
at uniformly random poses (yaw +-90, pitch +-45, roll +-30 deg), projected by a 450 x 450
pinhole camera with focal length 450 px (the one the solver assumes) from 0.35-0.7 m. On it,
errors come only from the face shape differing from the mean face and from the experiment's
own change, so they are lower than on real annotations (which also carry annotation noise,
expression and 3DDFA's orthographic projection).

Outputs: the table on stdout, ``--json`` (every number, plus the images used and filtered),
``--out-dir`` with ``study.md`` and ``points.png``, ``jitter.png``, ``stretch.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

import numpy as np

AXES = ("yaw", "pitch", "roll")
FILTER_DEG = 99.0
SYNTH_SIZE = 450


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, help="AFLW2000-3D-format folder (default: a generated set, see --help)")
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument("--out-dir", type=Path, help="write study.md and the plots here")
    parser.add_argument("--limit", type=int, help="use only the first N faces")
    parser.add_argument("--n-synthetic", type=int, default=300, help="faces in the generated set (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated set and of the jitter")
    parser.add_argument("--repeats", type=int, default=5, help="jitter draws per sigma (default 5)")
    parser.add_argument("--sigmas", type=_floats, default=_floats("0,1,2,3,4,5,6,7,8,9,10"),
                        help="landmark noise levels in px (default 0,1,...,10)")
    parser.add_argument("--stretches", type=_floats, default=_floats("-0.4,-0.3,-0.2,-0.1,0,0.1,0.2,0.3,0.4"),
                        help="relative width / height changes of the mean face, e.g. --stretches=-0.2,0,0.2 "
                             "(default -0.4,...,0.4)")
    parser.add_argument("--subset", default="68", help="points used by the jitter and stretch experiments "
                                                       "(default 68)")


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


# ---- data -----------------------------------------------------------------------------------------


def load_aflw2000(root: Path, limit: Optional[int] = None) -> dict:
    """Ground-truth landmarks (N, 68, 2), poses (N, 3) and image sizes (N, 2) = (w, h) of a folder."""
    from facemtl.data.mat3ddfa import read_aflw2000

    samples = read_aflw2000(root)[:limit]
    sizes = np.array([s.load_image().shape[1::-1] for s in samples], dtype=np.float64)
    return {
        "kind": "aflw2000",
        "root": str(root),
        "names": [Path(s.image_path).name for s in samples],
        "landmarks": np.stack([s.landmarks for s in samples]),
        "pose": np.stack([s.pose for s in samples]),
        "size": sizes,
    }


def synthetic_set(n: int, seed: int = 0) -> dict:
    """The generated set of the module docstring: perturbed mean faces at random poses."""
    from facemtl.geometry.pnp import camera_matrix, mean_face, project_points
    from facemtl.geometry.rotations import euler_to_matrix

    rng = np.random.default_rng(seed)
    faces = mean_face()[None] * rng.normal(1.0, 0.07, (n, 1, 3)) + rng.normal(0.0, 2.0, (n, 68, 3))
    pose = rng.uniform([-90, -45, -30], [90, 45, 30], (n, 3))
    K = camera_matrix(SYNTH_SIZE, SYNTH_SIZE)
    z = rng.uniform(350.0, 700.0, n)
    shift_px = rng.uniform(-40.0, 40.0, (n, 2))
    t = np.column_stack([shift_px * z[:, None] / K[0, 0], z])
    return {
        "kind": "synthetic",
        "root": None,
        "names": [f"synthetic_{i:05d}" for i in range(n)],
        "landmarks": project_points(faces, euler_to_matrix(pose), t, K),
        "pose": pose,
        "size": np.full((n, 2), float(SYNTH_SIZE)),
    }


# ---- experiments ----------------------------------------------------------------------------------


def poses_from_landmarks(landmarks: np.ndarray, sizes: np.ndarray, subset: str, model: np.ndarray) -> np.ndarray:
    """Poses (N, 3) with NaN rows where PnP failed; one camera per distinct image size."""
    from facemtl.geometry.pnp import landmarks_to_pose

    out = np.full((len(landmarks), 3), np.nan)
    for size in np.unique(sizes, axis=0):
        rows = (sizes == size).all(axis=1)
        out[rows] = landmarks_to_pose(landmarks[rows], tuple(size), subset, model_3d=model, errors="nan")
    return out


def _score(pred: np.ndarray, gt: np.ndarray, bias: bool = False) -> dict:
    from facemtl.metrics.pose import mean_signed_error, pose_mae

    ok = np.isfinite(pred).all(axis=1)
    if not ok.any():
        return {**{k: float("nan") for k in (*AXES, "mean")}, "n": 0, "n_failed": int(len(pred))}
    mae = pose_mae(pred[ok], gt[ok], filter_deg=None)
    result = {k: mae[k] for k in (*AXES, "mean")}
    result.update(n=int(ok.sum()), n_failed=int((~ok).sum()))
    if bias:
        result["bias"] = {k: v for k, v in mean_signed_error(pred[ok], gt[ok], filter_deg=None).items() if k in AXES}
    return result


def run_study(data: dict, sigmas: list[float], stretches: list[float], repeats: int = 5, seed: int = 0,
              subset: str = "68") -> dict:
    """All four experiments on ``data`` (from :func:`load_aflw2000` or :func:`synthetic_set`)."""
    from facemtl.geometry.pnp import POINT_SUBSETS, mean_face, mean_face_alignment, subset_indices
    from facemtl.geometry.rotations import matrix_to_euler

    subset_indices(subset)  # unknown names fail here, before any work
    keep = (np.abs(data["pose"]) <= FILTER_DEG).all(axis=1)
    lm, gt, size = data["landmarks"][keep], data["pose"][keep], data["size"][keep]
    if not len(lm):
        raise ValueError(f"no face left after the |angle| <= {FILTER_DEG:g} filter ({len(keep)} read)")
    model = mean_face()
    result: dict = {
        "dataset": {
            "kind": data["kind"], "root": data["root"], "n_read": int(len(keep)), "n_used": int(keep.sum()),
            "n_filtered": int((~keep).sum()), "filter": f"|ground-truth angle| <= {FILTER_DEG:g} deg",
            "filtered": [n for n, k in zip(data["names"], keep) if not k],
        },
        "camera": "pinhole, focal = image width, principal point = image centre, no distortion",
        "subset": subset,
    }

    result["points"] = [
        {"subset": name, "n_points": len(idx), **_score(poses_from_landmarks(lm, size, name, model), gt)}
        for name, idx in POINT_SUBSETS.items()
    ]

    rng = np.random.default_rng(seed)
    unit = rng.standard_normal((repeats,) + lm.shape)
    jitter = []
    for sigma in sigmas:
        runs = [_score(poses_from_landmarks(lm + sigma * u, size, subset, model), gt) for u in unit]
        row = {k: float(np.mean([r[k] for r in runs])) for k in (*AXES, "mean")}
        row.update(sigma=sigma, mean_std=float(np.std([r["mean"] for r in runs])),
                   n_failed=int(sum(r["n_failed"] for r in runs)), repeats=repeats)
        jitter.append(row)
    result["jitter"] = jitter

    stretch = []
    for axis, column in (("width", 0), ("height", 1)):
        for s in stretches:
            scaled = model.copy()
            scaled[:, column] *= 1.0 + s
            stretch.append({"axis": axis, "stretch": s, **_score(poses_from_landmarks(lm, size, subset, scaled), gt)})
    result["stretch"] = stretch

    result["alignment"] = {
        "offset_ypr_deg": (matrix_to_euler(mean_face_alignment()).round(4) + 0.0).tolist(),  # no -0.0
        "results": [
            {"subset": name, "mean_face": "aligned" if aligned else "unaligned",
             **_score(poses_from_landmarks(lm, size, name, mean_face(aligned=aligned)), gt, bias=True)}
            for name in POINT_SUBSETS for aligned in (True, False)
        ],
    }
    return result


# ---- reporting ------------------------------------------------------------------------------------


def _row(cells: list) -> str:
    return "| " + " | ".join(f"{c:.2f}" if isinstance(c, float) else str(c) for c in cells) + " |"


def to_markdown(result: dict) -> str:
    d = result["dataset"]
    source = f"AFLW2000-format `{d['root']}`" if d["kind"] == "aflw2000" else "generated set (see `--help`)"
    lines = [
        "# Landmark-to-pose study (Hopenet §4.2)",
        "",
        f"Data: {source}; {d['n_used']} faces used of {d['n_read']} ({d['n_filtered']} dropped by "
        f"{d['filter']}). Camera: {result['camera']}. Ground-truth landmarks, facemtl mean face, PnP. "
        "Mean absolute errors in degrees.",
        "",
        "## Number of points",
        "",
        "| subset | points | yaw | pitch | roll | mean | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [_row([r["subset"], r["n_points"], r["yaw"], r["pitch"], r["roll"], r["mean"], r["n_failed"]])
              for r in result["points"]]
    j = result["jitter"]
    lines += ["", f"## Landmark noise ({result['subset']} points, {j[0]['repeats']} draws per sigma)", "",
              "| sigma (px) | yaw | pitch | roll | mean | std of mean over draws | failed |",
              "|---|---|---|---|---|---|---|"]
    lines += [_row([r["sigma"], r["yaw"], r["pitch"], r["roll"], r["mean"], r["mean_std"], r["n_failed"]]) for r in j]
    lines += ["", f"## Mean-face shape ({result['subset']} points; dimension scaled by 1 + stretch)", "",
              "| dimension | stretch | yaw | pitch | roll | mean | failed |", "|---|---|---|---|---|---|---|"]
    lines += [_row([r["axis"], f"{r['stretch']:+.0%}", r["yaw"], r["pitch"], r["roll"], r["mean"], r["n_failed"]])
              for r in result["stretch"]]
    al = result["alignment"]
    lines += ["", "## Mean-face frame alignment", "",
              f"`aligned`: the stored mean face, rotated by ypr {al['offset_ypr_deg']} deg onto the Pose_Para frontal; "
              "`unaligned`: ICT's own frontal. Bias = mean signed error (prediction - ground truth).", "",
              "| subset | mean face | yaw | pitch | roll | mean | bias yaw | bias pitch | bias roll |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in al["results"]:
        b = r["bias"]
        lines.append(_row([r["subset"], r["mean_face"], r["yaw"], r["pitch"], r["roll"], r["mean"],
                           b["yaw"], b["pitch"], b["roll"]]))
    return "\n".join(lines) + "\n"


def plot(result: dict, out_dir: Path) -> list[Path]:
    """points.png, jitter.png and stretch.png in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        paths.append(out_dir / name)

    pts = result["points"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    x = np.arange(len(pts))
    for k, axis in enumerate((*AXES, "mean")):
        ax.plot(x, [r[axis] for r in pts], "o-", lw=2.5 if axis == "mean" else 1.2, label=axis)
    ax.set_xticks(x, [f"{r['subset']}\n({r['n_points']})" if r["subset"] != str(r["n_points"]) else r["subset"]
                      for r in pts])
    ax.set(xlabel="landmark subset (points)", ylabel="MAE (deg)", title="Pose error vs number of points")
    ax.legend()
    ax.grid(alpha=0.3)
    save(fig, "points.png")

    jit = result["jitter"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    sig = [r["sigma"] for r in jit]
    for axis in (*AXES, "mean"):
        ax.plot(sig, [r[axis] for r in jit], "o-", lw=2.5 if axis == "mean" else 1.2, label=axis)
    ax.set(xlabel="landmark noise sigma (px)", ylabel="MAE (deg)", title=f"Pose error vs landmark noise "
                                                                          f"({result['subset']} points)")
    ax.legend()
    ax.grid(alpha=0.3)
    save(fig, "jitter.png")

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for dim in ("width", "height"):
        rows = [r for r in result["stretch"] if r["axis"] == dim]
        ax.plot([100 * r["stretch"] for r in rows], [r["mean"] for r in rows], "o-", label=f"{dim} (mean MAE)")
    ax.set(xlabel="mean-face stretch (%)", ylabel="MAE (deg)", title="Pose error vs mean-face shape")
    ax.legend()
    ax.grid(alpha=0.3)
    save(fig, "stretch.png")
    return paths


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None  # strict JSON has no NaN
    return value


def run(args: argparse.Namespace) -> int:
    if args.root is not None:
        data = load_aflw2000(args.root, args.limit)
    else:
        data = synthetic_set(args.n_synthetic, args.seed)
        if args.limit is not None:
            data = {k: (v[:args.limit] if isinstance(v, (np.ndarray, list)) else v) for k, v in data.items()}
    result = run_study(data, args.sigmas, args.stretches, args.repeats, args.seed, args.subset)
    table = to_markdown(result)
    print(table, end="")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_jsonable(result), indent=2) + "\n")
    if args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / "study.md").write_text(table)
        plot(result, args.out_dir)
    return 0

"""``facemtl synth``: render N labelled synthetic faces into a folder.

Writes ``NNNNNN.jpg`` + ``NNNNNN.mat`` (see :mod:`facemtl.synth.writer`), or with
``--format npz`` shards ``shard_NNNNN.npz`` of ``--shard-size`` faces, plus ``synth.json``
(the configuration and the blendshape names). Sample ``i`` is rendered from
``sample_rng(seed, i)``, so the output does not depend on ``--workers``.

Three kinds of image: one rendered face (default); ``--scene``: several rendered faces per
image (per-face arrays with a leading face axis, read by
:func:`facemtl.data.mat3ddfa.read_synth_scenes`); ``--profile``: a real LFW photo with its
head turned to a random yaw (:func:`facemtl.synth.profile.sample_profile`, 300W-LP style;
label = the photo's fitted pose plus the applied turn), one face per image like the default.
"""

from __future__ import annotations

import argparse
import sys

from facemtl.progress import Progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, required=True, help="number of images")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--textures", default=None, help="photo folder for photo textures (e.g. ../shared/data/lfw)")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--scene", action="store_true", help="several faces per image (detection scenes)")
    kind.add_argument("--profile", action="store_true",
                      help="LFW photos with the head turned to a random yaw (300W-LP-style face profiling)")
    parser.add_argument("--lfw", default=None,
                        help="LFW folder for --profile (default: the --shared folder's data/lfw)")
    parser.add_argument("--pitch-sd", type=float, default=0.0,
                        help="--profile: also tilt the head by N(0, SD) degrees of pitch (default 0)")
    parser.add_argument("--workers", type=int, default=0, help="processes (default: one per CPU core)")
    parser.add_argument("--format", choices=("jpg", "npz"), default="jpg",
                        help="jpg: .jpg + .mat per image (default); npz: uint8 shards for training")
    parser.add_argument("--shard-size", type=int, default=1000, help="faces per .npz shard (default 1000)")
    parser.add_argument("--supersample", type=int, default=1, help="anti-aliasing factor (default 1)")
    parser.add_argument("--shared", default=None, help="the shared data folder (LFW backgrounds; default $FACEMTL_SHARED or the checkout's ../shared)")


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import time
    from dataclasses import asdict
    from pathlib import Path

    from facemtl.io import shared_dir
    from facemtl.synth.config import SynthConfig
    from facemtl.synth.facemodel import FaceModel

    if args.n < 1 or args.size < 16 or args.supersample < 1 or args.shard_size < 1:
        print("facemtl synth: --n and --shard-size must be >= 1, --size >= 16, --supersample >= 1", file=sys.stderr)
        return 2
    if args.scene and args.format == "npz":
        print("facemtl synth: --scene writes .jpg + .mat only", file=sys.stderr)
        return 2
    if args.profile and (args.textures or args.supersample != 1):
        print("facemtl synth: --profile turns real photos: it takes no --textures or --supersample", file=sys.stderr)
        return 2
    if args.lfw and not args.profile:
        print("facemtl synth: --lfw is for --profile (rendered faces take --textures)", file=sys.stderr)
        return 2
    if args.textures and not Path(args.textures).is_dir():
        print(f"facemtl synth: {args.textures}: texture folder not found", file=sys.stderr)
        return 2
    if args.pitch_sd and not args.profile:
        print("facemtl synth: --pitch-sd is for --profile", file=sys.stderr)
        return 2
    profile = None  # what --profile turns: {"lfw": folder, "pitch_sd": degrees}
    if args.profile:
        lfw = str(args.lfw or Path(args.shared or shared_dir()) / "data" / "lfw")
        if not Path(lfw).is_dir():
            print(f"facemtl synth: {lfw}: LFW folder not found (give --lfw)", file=sys.stderr)
            return 2
        profile = {"lfw": lfw, "pitch_sd": args.pitch_sd}
    mode = "profile" if args.profile else "scene" if args.scene else "face"
    config = SynthConfig(size=args.size, supersample=args.supersample, textures=args.textures, shared=args.shared)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "synth.json").write_text(json.dumps({"seed": args.seed, "n": args.n, "scene": args.scene,
                                                 "profile": profile,
                                                 "config": asdict(config),
                                                 "expr_names": list(FaceModel.load(config.model_path).expr_names)}, indent=1))
    if args.format == "npz":
        jobs = [(k, range(s, min(s + args.shard_size, args.n))) for k, s in enumerate(range(0, args.n, args.shard_size))]
    else:
        step = 25
        jobs = [(None, range(s, min(s + step, args.n))) for s in range(0, args.n, step)]
    workers = args.workers or os.cpu_count() or 1
    start = time.perf_counter()
    task = (str(out), args.seed, config, mode, profile)
    if workers > 1:
        import cv2

        # Before the warm-up starts OpenCV's thread pool: a child forked from a process whose pool
        # is running hangs in its first cv2.setNumThreads (seen: --scene --workers 2 at 0 % CPU).
        cv2.setNumThreads(1)
    _warm_up(config, mode, profile)  # compile / load the kernels and build the meshes once, before forking
    bar = Progress(args.n, "synth", unit="img")
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(min(workers, len(jobs))) as pool:
            for done in pool.imap_unordered(_run_job, [(task, job) for job in jobs]):
                bar.update(done)
    else:
        for job in jobs:
            bar.update(_run_job((task, job)))
    bar.close()
    seconds = time.perf_counter() - start
    kind = {"face": "faces", "scene": "scene images", "profile": "profiled photos"}[mode]
    print(f"{out}: {args.n} {kind} ({args.format}) in {seconds:.1f} s, {args.n / seconds:.1f} images/s, "
          f"{workers} worker(s)")
    return 0


def _render(rng, config, mode: str, profile):
    """One image and its labels (a list of them for a scene)."""
    from facemtl.synth.render import render_sample, render_scene

    if mode == "profile":
        from facemtl.synth.profile import sample_profile

        return sample_profile(rng, profile["lfw"], config.size, pitch_sd=profile["pitch_sd"])
    return render_scene(rng, config) if mode == "scene" else render_sample(rng, config)


def _warm_up(config, mode: str, profile) -> None:
    """Build the meshes of every detail level and compile the kernels (forked workers share them)."""
    from facemtl.synth.assets import LOD_LEVELS, assets_for
    from facemtl.synth.config import sample_rng

    if mode != "profile":  # profiling draws the full-detail fitted mesh, not the detail levels
        assets = assets_for(config)
        for cell in LOD_LEVELS:
            assets.lod(cell)
    _render(sample_rng(2**31 - 1, 0), config, mode, profile)


def _run_job(arg) -> int:
    """Render one job's images; returns how many (for the progress bar)."""
    (out, seed, config, mode, profile), (shard, indices) = arg
    from pathlib import Path

    import cv2

    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads only contend

    from facemtl.synth.config import sample_rng
    from facemtl.synth.writer import shard_arrays, write_face, write_npz

    out = Path(out)
    if shard is not None:
        images, labels = [], []
        for i in indices:
            image, lab = _render(sample_rng(seed, i), config, mode, profile)
            images.append(image)
            labels.append(lab)
        write_npz(out / f"shard_{shard:05d}.npz", shard_arrays(images, labels))
        return len(indices)
    for i in indices:
        image, lab = _render(sample_rng(seed, i), config, mode, profile)
        write_face(out, f"{i:06d}", image, lab)
    return len(indices)

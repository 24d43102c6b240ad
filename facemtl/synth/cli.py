"""``facemtl synth``: render N labelled synthetic faces into a folder.

Writes ``NNNNNN.jpg`` + ``NNNNNN.mat`` (see :mod:`facemtl.synth.writer`), or with
``--format npz`` shards ``shard_NNNNN.npz`` of ``--shard-size`` faces, plus ``synth.json``
(the configuration and the blendshape names). Sample ``i`` is rendered from
``sample_rng(seed, i)``, so the output does not depend on ``--workers``.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, required=True, help="number of images")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--textures", default=None, help="photo folder for photo textures (e.g. ../shared/data/lfw)")
    parser.add_argument("--scene", action="store_true", help="several faces per image (detection scenes)")
    parser.add_argument("--workers", type=int, default=0, help="processes (default: one per CPU core)")
    parser.add_argument("--format", choices=("jpg", "npz"), default="jpg",
                        help="jpg: .jpg + .mat per image (default); npz: uint8 shards for training")
    parser.add_argument("--shard-size", type=int, default=1000, help="faces per .npz shard (default 1000)")
    parser.add_argument("--supersample", type=int, default=1, help="anti-aliasing factor (default 1)")
    parser.add_argument("--shared", default=None, help="the ../shared folder (LFW backgrounds)")


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import time
    from dataclasses import asdict
    from pathlib import Path

    from facemtl.synth.facemodel import FaceModel
    from facemtl.synth.render import SynthConfig

    if args.n < 1 or args.size < 16 or args.supersample < 1 or args.shard_size < 1:
        print("facemtl synth: --n and --shard-size must be >= 1, --size >= 16, --supersample >= 1", file=sys.stderr)
        return 2
    if args.scene and args.format == "npz":
        print("facemtl synth: --scene writes .jpg + .mat only", file=sys.stderr)
        return 2
    if args.textures and not Path(args.textures).is_dir():
        print(f"facemtl synth: {args.textures}: texture folder not found", file=sys.stderr)
        return 2
    config = SynthConfig(size=args.size, supersample=args.supersample, textures=args.textures, shared=args.shared)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "synth.json").write_text(json.dumps({"seed": args.seed, "n": args.n, "scene": args.scene,
                                                 "config": asdict(config),
                                                 "expr_names": list(FaceModel.load(config.model_path).expr_names)}, indent=1))
    if args.format == "npz":
        jobs = [(k, range(s, min(s + args.shard_size, args.n))) for k, s in enumerate(range(0, args.n, args.shard_size))]
    else:
        step = 25
        jobs = [(None, range(s, min(s + step, args.n))) for s in range(0, args.n, step)]
    workers = args.workers or os.cpu_count() or 1
    start = time.perf_counter()
    _warm_up(config)  # compile / load the kernels and build the meshes once, before forking
    task = (str(out), args.seed, config, args.scene)
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(min(workers, len(jobs))) as pool:
            for _ in pool.imap_unordered(_run_job, [(task, job) for job in jobs]):
                pass
    else:
        for job in jobs:
            _run_job((task, job))
    seconds = time.perf_counter() - start
    kind = "scene images" if args.scene else "faces"
    print(f"{out}: {args.n} {kind} ({args.format}) in {seconds:.1f} s, {args.n / seconds:.0f} images/s, "
          f"{workers} worker(s)")
    return 0


def _warm_up(config) -> None:
    """Build the meshes of every detail level and compile the kernels (forked workers share them)."""
    from facemtl.synth.render import LOD_LEVELS, assets_for, render_sample, sample_rng

    assets = assets_for(config)
    for cell in LOD_LEVELS:
        assets.lod(cell)
    render_sample(sample_rng(2**31 - 1, 0), config)


def _run_job(arg) -> None:
    (out, seed, config, scene), (shard, indices) = arg
    from pathlib import Path

    import cv2

    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads only contend

    from facemtl.synth.render import render_sample, render_scene, sample_rng
    from facemtl.synth.writer import shard_arrays, write_face, write_npz

    out = Path(out)
    if shard is not None:
        images, labels = [], []
        for i in indices:
            image, lab = render_sample(sample_rng(seed, i), config)
            images.append(image)
            labels.append(lab)
        write_npz(out / f"shard_{shard:05d}.npz", shard_arrays(images, labels))
        return
    for i in indices:
        rng = sample_rng(seed, i)
        image, lab = render_scene(rng, config) if scene else render_sample(rng, config)
        write_face(out, f"{i:06d}", image, lab)

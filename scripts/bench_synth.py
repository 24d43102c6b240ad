"""Benchmark the synthetic face engine: images/s per path, rendering with all labels.

    python scripts/bench_synth.py [--n 400] [--size 128] [--workers 2] [--textures ../shared/data/lfw]

Paths: ``procedural`` (procedural skin texture), ``photo`` (photo textures, with --textures),
``scene`` (several faces per image). Each is timed in one process (CPU seconds and wall
seconds) and with ``--workers`` processes (wall), after a warm-up that compiles the kernels,
builds the meshes and loads the photo texture pool (computing the textures not yet in the
disk cache: minutes on the first run). Writing files is not included (see ``facemtl synth`` for that).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from dataclasses import replace


def _render_range(arg) -> int:
    config, path, start, stop = arg
    from facemtl.synth.config import sample_rng
    from facemtl.synth.render import render_sample, render_scene

    fn = render_scene if path == "scene" else render_sample
    for i in range(start, stop):
        fn(sample_rng(1, i), config)
    return stop - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--textures", default=None)
    parser.add_argument("--supersample", type=int, default=1)
    args = parser.parse_args()

    from facemtl.synth.config import SynthConfig

    base = SynthConfig(size=args.size, supersample=args.supersample)
    paths = {"procedural": base}
    if args.textures:
        paths["photo"] = replace(base, textures=args.textures, p_photo_texture=1.0)
    paths["scene"] = replace(base, size=max(args.size, 256))
    for name, config in paths.items():
        _render_range((config, name, 10_000, 10_020))  # warm-up: kernels, meshes, background photos
        if name == "photo":  # load (or first compute and disk-cache) the whole texture pool
            import numpy as np

            from facemtl.synth.assets import assets_for
            from facemtl.synth.texture import random_texture

            for k in range(3000):
                random_texture(np.random.default_rng(k), args.textures, assets_for(config).atlas)
        n = args.n if name != "scene" else max(args.n // 8, 10)
        cpu, wall = time.process_time(), time.perf_counter()
        _render_range((config, name, 0, n))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        line = f"{name:>10} {config.size}px: 1 process {n / wall:6.1f} images/s ({1000 * cpu / n:.1f} ms CPU/image)"
        if args.workers > 1:
            chunks = [(config, name, s, min(s + 25, n)) for s in range(0, n, 25)]
            with mp.get_context("fork").Pool(args.workers) as pool:
                pool.map(_render_range, [(config, name, 10_020 + k, 10_022 + k) for k in range(args.workers)])
                wall = time.perf_counter()
                pool.map(_render_range, chunks)
                wall = time.perf_counter() - wall
            line += f", {args.workers} processes {n / wall:6.1f} images/s"
        print(line, flush=True)


if __name__ == "__main__":
    main()

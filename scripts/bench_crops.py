"""Per-crop model speed: latency of one crop (batch 1) and throughput of batches of crops.

    python scripts/bench_crops.py --model model.onnx --model model.int8.onnx
    python scripts/bench_crops.py --untrained mtl_mobilenetv3_small --size 128   # needs torch and ../shared/data/lfw

Times :meth:`facemtl.infer.onnx_model.OnnxModel.predict` (uint8 crops in, decoded outputs out:
what :class:`facemtl.FaceAnalyzer` calls per batch of faces) with ``--threads`` onnxruntime
threads: min / median / max milliseconds per call at batch 1 over ``--repeats`` calls, and
crops per second at ``--batch`` over ``--batch-repeats`` calls. ``--untrained NAME`` first
exports a randomly initialised model of the registry and its int8 version (calibrated on
faces of ``../shared/data/lfw``) into a temporary folder and times both: the speed of an
architecture before its training is done. The machine's load average is printed before and
after, since other processes share the CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facemtl.infer.onnx_model import OnnxModel

REPO = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    """The CPU's model name where Linux tells it, else the machine type."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def time_calls(fn, repeats: int, warmup: int) -> list[float]:
    """Wall times (s) of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def bench(path: Path, threads: int, repeats: int, batch: int, batch_repeats: int) -> str:
    model = OnnxModel(path, threads=threads, max_batch=batch)
    s = model.input_size
    crops = np.random.default_rng(0).integers(0, 256, (batch, s, s, 3), dtype=np.uint8)
    one = [1000 * t for t in time_calls(lambda: model.predict(crops[:1]), repeats, warmup=10)]
    many = [batch / t for t in time_calls(lambda: model.predict(crops), batch_repeats, warmup=2)]
    return (f"{path.name} ({model.name}, {s} px, {path.stat().st_size / 1e6:.1f} MB): batch 1: "
            f"{min(one):.2f} / {statistics.median(one):.2f} / {max(one):.2f} ms per crop (min / median / max of "
            f"{repeats}); batch {batch}: {min(many):.0f} / {statistics.median(many):.0f} / {max(many):.0f} crops/s "
            f"(min / median / max of {batch_repeats})")


def export_untrained(name: str, size: int, folder: Path, n_calibration: int) -> list[Path]:
    """fp32 and int8 ONNX files of a randomly initialised registry model."""
    import torch

    from facemtl.tools.export import face_crops, int8_path, quantize_int8
    from facemtl.models import create_model
    from facemtl.models.export import export_onnx

    torch.manual_seed(0)
    fp32 = folder / f"{name}_{size}.onnx"
    export_onnx(create_model(name), fp32, size, 1.5)
    crops = face_crops(REPO.parent / "shared" / "data" / "lfw", size, 1.5, n_calibration)
    quantize_int8(fp32, int8_path(fp32), crops)
    return [fp32, int8_path(fp32)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", default=[], help="ONNX model (repeatable)")
    parser.add_argument("--untrained", metavar="NAME", help="also time a random model of the registry, fp32 and int8")
    parser.add_argument("--size", type=int, default=128, help="input size of --untrained")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=300, help="timed batch-1 calls")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batch-repeats", type=int, default=20, help="timed batched calls")
    args = parser.parse_args()
    import onnxruntime

    print(f"{cpu_name()}, {os.cpu_count()} CPUs, onnxruntime {onnxruntime.__version__}, {args.threads} threads; "
          f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = list(args.model)
        if args.untrained:
            paths += export_untrained(args.untrained, args.size, Path(tmp), 200)
        if not paths:
            parser.error("give --model and/or --untrained")
        for path in paths:
            print(bench(path, args.threads, args.repeats, args.batch, args.batch_repeats), flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

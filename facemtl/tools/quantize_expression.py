"""``python -m facemtl.tools.quantize_expression``: the expression model's static int8 file from its ONNX.

    python -m facemtl.tools.quantize_expression --onnx runs/expression/expression.onnx \\
        --config expression --out facemtl/assets/expression.onnx

``facemtl export --int8`` calibrates on the faces a detector finds in a folder of photos. The
expression model is trained on tight grey crops of FER2013 and faces-mux, and its validation sets
are parts of the same folders, so here the calibration crops are drawn from the config's own
training sources instead (:func:`facemtl.train.expression.load_source`: FER2013 ``train`` and the
faces-mux train part, in the config's proportions; the validation parts are never read). The input
may store its weights as float16 (``--fp16-weights``): they are read back as float32 first
(:func:`facemtl.tools.weights_fp16.restore_weights`). Quantisation is that of ``facemtl export
--int8`` (:func:`facemtl.tools.export.quantize_int8`: QDQ, int8 weights per channel, uint8
activations, the classifier left in float). The agreement with the input on further training crops
is printed; accuracy comes from ``facemtl eval --expression-model OUT`` on the validation sets.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np


def calibration_crops(config: str | Path, n: int, seed: int = 0) -> np.ndarray:
    """``n`` uint8 BGR crops (n, S, S, 3) of the config's training sources, each source's share by its
    ``weight``, drawn in a seeded order; grey repeated over the three channels (the model reads grey)."""
    from facemtl.train.config import TrainConfig
    from facemtl.train.expression import is_expression_config, load_source

    cfg = TrainConfig.load(config)
    if not is_expression_config(cfg):
        raise ValueError(f"{config}: not an expression model's config (model {cfg.model})")
    rng = np.random.default_rng(seed)
    weights = np.array([spec.weight for spec in cfg.data], np.float64)
    counts = np.floor(n * weights / weights.sum()).astype(int)
    counts[0] += n - counts.sum()
    crops = []
    for spec, k in zip(cfg.data, counts):
        grey, _ = load_source(spec, cfg)
        if grey.shape[1] != cfg.input_size:  # FER2013's own 48 px images, for a model of another size
            grey = np.stack([cv2.resize(g, (cfg.input_size,) * 2, interpolation=cv2.INTER_AREA) for g in grey])
        crops.append(grey[rng.permutation(len(grey))[:k]])
    grey = np.concatenate(crops)
    return np.repeat(grey[rng.permutation(len(grey)), :, :, None], 3, axis=3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", required=True, type=Path, help="the expression model (float32 or float16 weights)")
    parser.add_argument("--config", default="expression", help="its training config (default: expression)")
    parser.add_argument("--out", required=True, type=Path, help="the int8 file to write")
    parser.add_argument("--n-calibration", type=int, default=300, help="calibration crops (default 300)")
    parser.add_argument("--n-check", type=int, default=300, help="further crops to compare on (default 300)")
    args = parser.parse_args(argv)

    from facemtl.infer.onnx_model import OnnxModel
    from facemtl.io import FileError
    from facemtl.tools.export import quantize_int8
    from facemtl.tools.weights_fp16 import restore_weights

    try:
        if not args.onnx.is_file():
            raise FileError(args.onnx, "model file not found")
        crops = calibration_crops(args.config, args.n_calibration + args.n_check)
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = Path(tmp) / "expression.onnx"
            restore_weights(args.onnx, fp32)
            _, ranges = quantize_int8(fp32, args.out, crops[:args.n_calibration])
        check = crops[args.n_calibration:]
        before, after = (OnnxModel(p).predict(check)["expression"] for p in (args.onnx, args.out))
    except (FileNotFoundError, ValueError, FileError) as e:
        print(f"quantize_expression: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.out}: int8, {args.out.stat().st_size / 1e6:.2f} MB, calibrated on {args.n_calibration} training "
          f"crops of {args.config} ({ranges} ranges)")
    same, diff = np.mean(before.argmax(1) == after.argmax(1)), np.abs(before - after)
    print(f"against {args.onnx} on {len(check)} further training crops: same class {same:.1%}, "
          f"mean |probability difference| {diff.mean():.4f} (max {diff.max():.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

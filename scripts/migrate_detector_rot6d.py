"""Rewrite a MOS detector ONNX file of the earlier output contract (``rotation`` (N, A, 3, 3), the 6D
pose turned into a matrix for every anchor inside the graph) to the present one
(``facemtl.contract.DETECTOR_OUTPUTS``: ``rot6d`` (N, A, 6), turned into matrices in numpy for the
kept anchors only), keeping every weight byte for byte (an int8 file is not re-quantised), then check
on real images that the two files give the same scores, codes and rotations::

    python scripts/migrate_detector_rot6d.py facemtl/assets/mos.onnx /tmp/mos.onnx \
        --check ../shared/data/photos

This is how the shipped ``mos.onnx`` (detector ``37eab3c3``) moved to the new contract on 2026-12-07.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from facemtl.contract import DETECTOR_OUTPUTS, INPUT_NAME
from facemtl.geometry.anchors import run_canvas
from facemtl.geometry.rotations import sixd_to_matrix
from facemtl.infer.onnx_model import cpu_session
from facemtl.io import IMAGE_SUFFIXES, read_image


def rot6d_tensor(graph: onnx.GraphProto) -> str:
    """The network's 6D output: the first tensor made by a node of the model itself (torch export
    names them ``/model/...``) on the way back from ``rotation``."""
    made_by = {out: node for node in graph.node for out in node.output}
    name = "rotation"
    while not made_by[name].name.startswith("/model/"):
        name = made_by[name].input[0]
    return name


def migrate(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    if [o.name for o in graph.output] != ["scores", "box_deltas", "point_deltas", "rotation"]:
        raise ValueError(f"outputs {[o.name for o in graph.output]}: not the earlier detector contract")
    old = rot6d_tensor(graph)
    for node in graph.node:
        node.output[:] = ["rot6d" if o == old else o for o in node.output]
        node.input[:] = ["rot6d" if i == old else i for i in node.input]
    kept_outputs = [o for o in graph.output if o.name != "rotation"]
    del graph.output[:]
    graph.output.extend(kept_outputs + [helper.make_tensor_value_info("rot6d", TensorProto.FLOAT, ["N", "A", 6])])
    # Keep only what the outputs need: the matrix-making nodes and their constants go.
    needed, nodes = {o.name for o in graph.output}, []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            nodes.append(node)
            needed.update(i for i in node.input if i)
    del graph.node[:]
    graph.node.extend(reversed(nodes))
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    if [o.name for o in graph.output] != list(DETECTOR_OUTPUTS):
        raise ValueError(f"migrated outputs {[o.name for o in graph.output]} != {list(DETECTOR_OUTPUTS)}")
    onnx.checker.check_model(model)
    return model


def check(old: Path, new: Path, images: list[Path], canvas: int) -> float:
    """Largest difference between the two files on ``images``: codes and scores must be equal, the
    rotations within float32 rounding."""
    a, b = cpu_session(old, 2), cpu_session(new, 2)
    worst = 0.0
    for path in images:
        x = run_canvas(read_image(path), canvas)[0].transpose(2, 0, 1)[None].astype(np.float32)
        ra = dict(zip([o.name for o in a.get_outputs()], a.run(None, {INPUT_NAME: x})))
        rb = dict(zip([o.name for o in b.get_outputs()], b.run(None, {INPUT_NAME: x})))
        for k in ("scores", "box_deltas", "point_deltas"):
            if not np.array_equal(ra[k], rb[k]):
                raise RuntimeError(f"{path}: {k} differs")
        worst = max(worst, float(np.abs(sixd_to_matrix(rb["rot6d"][0]) - ra["rotation"][0]).max()))
    return worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--check", type=Path, help="a folder of images to compare the two files on")
    ap.add_argument("--canvas", type=int, default=416)
    args = ap.parse_args(argv)
    onnx.save(migrate(onnx.load(str(args.old))), str(args.new))
    if args.check:
        images = sorted(p for p in args.check.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        print(f"{len(images)} images of {args.check}: scores and codes equal, rotations within "
              f"{check(args.old, args.new, images, args.canvas):.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

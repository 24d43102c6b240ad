"""A trainable checkpoint back from an exported ONNX file, when its run's checkpoint is lost.

Landmark/pose models and MOS detectors, float or int8 files.

The exporter folds every batch norm into the convolution before it (``y = W'x + b'``). Given a
checkpoint of the same architecture (any weights: it supplies the module layout) or the config alone,
each convolution and linear layer takes the file's weights, matched by the node's scope name and
checked by shape, and each batch norm is re-parametrised to reproduce ``W'x + b'`` exactly in eval mode
with the running statistics of real face crops: ``mean = E[W'x]``, ``var = Var[W'x]``,
``weight = sqrt(var + eps)``, ``bias = b' + mean``. So a train-mode batch of such crops normalises
nearly as eval mode does, and fine-tuning starts where the file is. Other tensors (a pose head's
``std_scale``, a visibility head's own weights) are read by name. The outputs are checked against
onnxruntime on the crops::

    python -m facemtl.tools.unfold_onnx --onnx facemtl/assets/default.onnx \\
        --like checkpoints/default-e71b4259.pt --config default --crops ../shared/data/300w/helen-train \\
        --out checkpoints/default-9b0b6a15.pt
    python -m facemtl.tools.unfold_onnx --onnx facemtl/assets/mos.onnx --config mos \\
        --crops ../shared/data/300w/helen-train --out runs/mos-37eab3c3.pt

An int8 file gives its dequantised weights: a start for fine-tuning, not the float model it came from.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def _onnx_tensors(model) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Initializers and Constant outputs by name, int8 weights dequantised (a QDQ file's
    ``DequantizeLinear`` of stored tensors), and Cast outputs -> their input (float16 storage)."""
    from onnx import helper, numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            values.update({n.output[0]: numpy_helper.to_array(a.t) for a in n.attribute if a.name == "value"})
        elif n.op_type == "DequantizeLinear" and all(i in values for i in n.input):
            q, scale = values[n.input[0]].astype(np.float32), values[n.input[1]].astype(np.float32)
            zero = values[n.input[2]].astype(np.float32) if len(n.input) > 2 else np.zeros_like(scale)
            axis = next((helper.get_attribute_value(a) for a in n.attribute if a.name == "axis"), 1)
            shape = [-1 if d == axis % q.ndim else 1 for d in range(q.ndim)] if scale.ndim else []
            values[n.output[0]] = (q - zero.reshape(shape)) * scale.reshape(shape)
    return values, {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Cast"}


def _module_name(node_name: str) -> str:
    """The module a traced node belongs to: ``/model/fpn/laterals.2/laterals.2.0/Conv`` ->
    ``fpn.laterals.2.0`` (the exporter's scopes; a scope that extends the one before replaces it)."""
    parts, name = node_name.strip("/").split("/")[1:-1], []  # drop the wrapper ("model") and the op
    for part in parts:
        if name and part.startswith(name[-1] + "."):
            name[-1] = part
        else:
            name.append(part)
    return ".".join(name)


def _layers_by_name(net: nn.Module, nodes: list) -> list[tuple[str, nn.Module]]:
    """The convolution or linear layer of ``net`` behind each node (an int8 file need not keep the
    forward pass's order, so nodes are matched by their scope names)."""
    modules = dict(net.named_modules())
    layers = [(name, modules.get(name)) for name in (_module_name(n.name) for n in nodes)]
    missing = [name for name, m in layers if not isinstance(m, (nn.Conv2d, nn.Linear))]
    if missing:
        raise ValueError(f"no convolution or linear layer named {missing[:3]} in the model")
    n_model = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in modules.values())
    if n_model != len(nodes):
        raise ValueError(f"{len(nodes)} conv/linear layers in the file, the model has {n_model}")
    return layers


def _following_norms(net: nn.Module) -> dict[int, nn.BatchNorm2d]:
    """``id(conv) -> the BatchNorm2d registered right after it`` (the exporter folds those pairs)."""
    pairs = {}
    for parent in net.modules():
        kids = list(parent.children())
        for a, b in zip(kids, kids[1:]):
            if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                pairs[id(a)] = b
    return pairs


def unfold(onnx_path: Path, net: nn.Module, crops: np.ndarray) -> dict[str, float]:
    """Load ``onnx_path`` into ``net`` (in place, eval mode after), batch norms re-parametrised on
    ``crops`` (N, S, S, 3 uint8 BGR). Returns the largest difference from onnxruntime per output."""
    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(onnx_path))
    values, cast = _onnx_tensors(graph)
    tensor = lambda name: torch.from_numpy(np.asarray(values[cast.get(name, name)], np.float32).copy())  # noqa: E731
    # The exporter's traced nodes are scoped "/model/..."; nodes appended later (the face-presence
    # probe, facemtl.tools.presence) are no layer of the network.
    layers = [n for n in graph.graph.node if n.op_type in ("Conv", "Gemm") and n.name.startswith("/")]
    order, norms = _layers_by_name(net.eval(), layers), _following_norms(net)
    folded = []  # (conv, bn, b') to re-parametrise
    with torch.no_grad():
        for (name, layer), node in zip(order, layers):
            w = tensor(node.input[1])
            if tuple(w.shape) != tuple(layer.weight.shape):
                raise ValueError(f"{name}: the file's {node.input[1]} is {tuple(w.shape)}, "
                                 f"not {tuple(layer.weight.shape)}")
            layer.weight.copy_(w)
            b = tensor(node.input[2]) if len(node.input) > 2 else torch.zeros(w.shape[0])
            bn = norms.get(id(layer))
            if bn is None:
                layer.bias.copy_(b)
                continue
            if layer.bias is not None:
                layer.bias.zero_()
            folded.append((layer, bn, b))
        kinds = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)
        layered = tuple(f"{n}." for n, m in net.named_modules() if isinstance(m, kinds))
        for key, value in net.state_dict().items():  # the rest by name (exported as model.<key>)
            stored = next((k for k in (f"model.{key}__fp16", f"model.{key}") if k in values), None)
            if stored is not None and not key.startswith(layered):
                value.copy_(tensor(stored))
        _set_pose_scale(net, values)
        x = torch.from_numpy(crops.transpose(0, 3, 1, 2).astype(np.float32))
        _reparametrise(net, folded, x)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    want = dict(zip(names, session.run(None, {"image": x[:32].numpy()})))
    with torch.no_grad():
        got = net.decode(net(x[:32]))
    return {k: float(np.abs(got[k].numpy() - want[k]).max()) for k in names if k in got}  # (not the presence)


def _set_pose_scale(net: nn.Module, values: dict[str, np.ndarray]) -> None:
    """A bins pose head's ``std_scale`` is exported as an anonymous constant: the only 3-vector
    multiplier in the file."""
    head = getattr(net, "pose_head", None)
    if head is None or not hasattr(head, "std_scale"):
        return
    found = [v for k, v in values.items() if k.startswith("onnx::Mul") and np.shape(v) == (3,)]
    if len(found) != 1:
        raise ValueError(f"expected one pose std_scale constant, found {len(found)}")
    head.std_scale.copy_(torch.from_numpy(np.array(found[0], np.float32)))


def _reparametrise(net: nn.Module, folded: list, x: torch.Tensor) -> None:
    """Each folded pair's batch norm: identity first (so eval mode equals the file), then the
    statistics of its convolution's output on ``x``, with weight and bias keeping eval mode exact."""
    for _, bn, b in folded:
        bn.running_mean.zero_()
        bn.running_var.fill_(1 - bn.eps)
        bn.weight.fill_(1.0)
        bn.bias.copy_(b)
    sums: dict[int, list] = {id(conv): [] for conv, _, _ in folded}
    hooks = [conv.register_forward_hook(lambda m, i, o: sums[id(m)].append((o.mean((0, 2, 3)), o.var((0, 2, 3)))))
             for conv, _, _ in folded]
    for i in range(0, len(x), 64):
        net(x[i:i + 64])
    for h in hooks:
        h.remove()
    for conv, bn, b in folded:
        mean = torch.stack([s[0] for s in sums[id(conv)]]).mean(0)
        var = torch.stack([s[1] for s in sums[id(conv)]]).mean(0)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.copy_(torch.sqrt(var + bn.eps))
        bn.bias.copy_(b + mean)


def face_crops(root: Path, size: int, crop_scale: float, n: int = 256) -> np.ndarray:
    """``n`` protocol crops of the training faces of a 300-W folder (never its held-out part)."""
    from facemtl.data.registry import load_dataset
    from facemtl.evaluate.protocol import protocol_crops

    return protocol_crops(load_dataset("300w", root, holdout="train")[:n], size, crop_scale)


def main(argv: list[str] | None = None) -> int:
    from facemtl.train.checkpoint import load_trained, untrained_model
    from facemtl.train.config import TrainConfig, read_yaml
    from facemtl.tools.export import photo_canvases
    from facemtl.train.detection.trainer import is_detector

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", required=True, type=Path, help="the exported file (float, or int8 QDQ)")
    parser.add_argument("--like", type=Path,
                        help="a checkpoint of the same architecture (default: the model built from --config)")
    parser.add_argument("--config", required=True, help="the config the file's run was trained with (stored)")
    parser.add_argument("--crops", required=True, type=Path, help="a 300-W folder: its training faces' "
                        "crops (a detector: canvases of its photos) set the batch-norm statistics")
    parser.add_argument("--step", type=int, default=0, help="the run's step, stored")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    cfg = TrainConfig.from_dict(read_yaml(args.config))
    if args.like is None:
        net = untrained_model(cfg)
    else:
        net, like = load_trained(args.like)
        if (cfg.model, cfg.input_size) != (like.model, like.input_size):
            raise SystemExit(f"--config {args.config} is {cfg.model} at {cfg.input_size} px, "
                             f"--like {like.model} at {like.input_size}")
    if is_detector(cfg):
        images = photo_canvases(args.crops, cfg.input_size, 128)
    else:
        images = face_crops(args.crops, cfg.input_size, cfg.crop_scale)
    worst = unfold(args.onnx, net, images)
    print("largest difference from the file:", {k: f"{v:.2e}" for k, v in worst.items()})
    weights = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}  # as committed
    state: dict[str, Any] = {"model": weights, "step": args.step, "config": cfg.to_dict()}
    torch.save(state, args.out)
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Export a task model to the facemtl ONNX contract (docs/model-format.md) and check it.

The graph is ``model`` + ``model.decode``: input ``image`` (N, 3, S, S) BGR 0..255 (the models
normalise it themselves), outputs in the contract's order, only those the model has, every one
with a dynamic batch axis. Uses the TorchScript exporter (the torch.export one needs onnxscript).
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from facemtl.contract import DETECTOR_OUTPUTS, EXPRESSIONS, INPUT_NAME, OUTPUTS, SR_OUTPUT

OPSET = 17


def _scale(g, x, factor: float):
    return g.op("Mul", x, g.op("Constant", value_t=torch.tensor(factor, dtype=torch.float32)))


def _register_symbolics() -> None:
    """ONNX symbolics for the aten ops of :mod:`facemtl.geometry.rotations_torch` that the TorchScript
    exporter lacks (deg2rad, rad2deg, hypot): plain Mul / Sqrt graphs."""
    from torch.onnx import register_custom_op_symbolic

    register_custom_op_symbolic("aten::deg2rad", lambda g, x: _scale(g, x, math.pi / 180), 9)
    register_custom_op_symbolic("aten::rad2deg", lambda g, x: _scale(g, x, 180 / math.pi), 9)
    register_custom_op_symbolic(
        "aten::hypot", lambda g, a, b: g.op("Sqrt", g.op("Add", g.op("Mul", a, a), g.op("Mul", b, b))), 9)


class _Contract(nn.Module):
    """model + decode, returning the named outputs as a tuple (what the exporter traces)."""

    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.decode(self.model(image))
        return tuple(out[n] for n in self.names)


def contract_outputs(model: nn.Module, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """The contract outputs of ``model`` (eval mode, no grad) for ``image``, in contract order."""
    with torch.no_grad():
        out = model.decode(model(image))
    return {n: out[n] for n in OUTPUTS if n in out}


def export_onnx(model: nn.Module, path: str | Path, input_size: int, crop_scale: float,
                name: str | None = None, check: bool = True, atol: float = 1e-4, rtol: float = 1e-5,
                pose_atol: float = 1e-3) -> list[str]:
    """Write ``model`` as a facemtl ONNX file at ``path``; returns the output names.

    ``name`` (default: ``model.facemtl_name`` set by ``create_model``) goes to ``facemtl_model``.
    With ``check``, the file is run with onnxruntime on a random batch of another size than the
    traced one and must match torch on every element: ``|onnx - torch| <= pose_atol`` for ``pose``
    and ``pose_std`` (degrees) and ``<= atol + rtol |torch|`` for the other outputs. Degrees get a
    plain absolute bound: they are float32 sums over 66 bins times up to ~100 degrees, whose
    rounding depends on the kernels torch picks (measured on a small multitask model: up to
    6.5e-4 degrees, or 7e-5 once torch.distributed is imported), so a bound near 1e-4 fails at
    random; 1e-3 degrees is still far below any pose error that matters. The file only reaches
    ``path`` once it passed: a failed check leaves whatever was there before.
    """
    name = name or getattr(model, "facemtl_name", None)
    if not name:
        raise ValueError("model has no registry name: pass name= or build it with create_model")
    was_training = model.training
    model.eval()
    try:
        gen = torch.Generator().manual_seed(0)
        dummy = torch.rand(2, 3, input_size, input_size, generator=gen) * 255
        names = list(contract_outputs(model, dummy))
        if not names:
            raise ValueError(f"{name}: the model produces none of the contract outputs")
        _register_symbolics()
        meta = {"facemtl_model": name, "facemtl_input_size": str(input_size),
                "facemtl_crop_scale": f"{crop_scale:g}", "facemtl_expressions": ",".join(EXPRESSIONS)}

        def compare(traced: str) -> None:
            image = torch.rand(3, 3, input_size, input_size, generator=gen) * 255
            got, want = _run_both(model, traced, image)
            bad = {}
            for k in want:
                a, r = (pose_atol, 0.0) if k in ("pose", "pose_std") else (atol, rtol)
                excess = float((np.abs(got[k] - want[k]) - a - r * np.abs(want[k])).max())
                if not excess <= 0:
                    bad[k] = f"{excess:.3g} over {a:g} + {r:g} |torch|"
            if bad:
                raise RuntimeError(f"{path}: not written, onnxruntime differs from torch: {bad}")

        # The wrapper must be in eval mode too: the exporter restores the wrapper's mode
        # recursively afterwards, which would leave `model` training.
        _write_checked(_Contract(model, names).eval(), dummy, Path(path), names,
                       {n: {0: "N"} for n in [INPUT_NAME, *names]}, meta, compare if check else None)
        return names
    finally:
        model.train(was_training)


def _write_checked(module: nn.Module, dummy: torch.Tensor, path: Path, output_names: list[str],
                   dynamic_axes: dict[str, dict[int, str]], metadata: dict[str, str],
                   check: Callable[[str], None] | None) -> None:
    """Trace ``module`` on ``dummy`` to ONNX (input :data:`INPUT_NAME`), replace the metadata with
    ``metadata``, check the graph, let ``check(traced_file)`` compare it with torch (it raises on a
    mismatch), then move it to ``path`` atomically: a failed export never touches ``path``."""
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        traced = os.path.join(tmp, "model.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(module, (dummy,), traced, dynamo=False, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=output_names, dynamic_axes=dynamic_axes)
        proto = onnx.load(traced)
        del proto.metadata_props[:]
        for key, value in metadata.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(proto)
        onnx.save(proto, traced)
        if check is not None:
            check(traced)
        os.replace(traced, path)


def _run_both(model: nn.Module, path: str | Path, image: torch.Tensor,
              outputs=None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The outputs of the ONNX file at ``path`` (onnxruntime CPU) and of ``model`` on ``image``
    (``outputs(model, image)``, default the contract's)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {INPUT_NAME: image.numpy()})))
    if outputs is not None:
        with torch.no_grad():
            want = outputs(model, image)
    else:
        want = {k: v.numpy() for k, v in contract_outputs(model, image).items()}
    if set(got) != set(want):
        raise RuntimeError(f"{path}: outputs {sorted(got)} but the model gives {sorted(want)}")
    return got, want


def max_abs_difference(model: nn.Module, path: str | Path, image: torch.Tensor) -> dict[str, float]:
    """Largest ``|onnx - torch|`` per output of the ONNX file at ``path`` and ``model`` on ``image``."""
    got, want = _run_both(model, path, image)
    return {k: float(np.abs(got[k] - want[k]).max()) for k in want}


def export_detector_onnx(model: nn.Module, path: str | Path, name: str | None = None, check: bool = True,
                         atol: float = 1e-4, rtol: float = 1e-4) -> list[str]:
    """Write a MOS detector (:mod:`facemtl.models.mos`) as ONNX: input ``image`` (N, 3, S, S) BGR
    0..255, the letterboxed canvas of ``model.spec``; outputs ``model.decode``'s
    (:data:`facemtl.contract.DETECTOR_OUTPUTS`: box, point and 6D pose codes, decoded in numpy).
    Metadata: ``facemtl_model``, ``facemtl_detector`` (the anchor spec as JSON). Checked against
    torch like :func:`export_onnx`; written only once it passed."""
    name = name or getattr(model, "facemtl_name", None)
    size = model.spec.input_size
    was_training = model.training
    model.eval()
    try:
        gen = torch.Generator().manual_seed(0)
        dummy = torch.rand(1, 3, size, size, generator=gen) * 255
        names = list(DETECTOR_OUTPUTS)

        def compare(traced: str) -> None:
            # A canvas of another shape than the traced one: the free height and width must hold.
            got, want = _run_both(model, traced, torch.rand(2, 3, size, size - 32, generator=gen) * 255,
                                  lambda m, x: {k: v.numpy() for k, v in m.decode(m(x)).items()})
            bad = {k: float(np.abs(got[k] - want[k]).max()) for k in want
                   if not np.allclose(got[k], want[k], atol=atol, rtol=rtol)}
            if bad:
                raise RuntimeError(f"{path}: not written, onnxruntime differs from torch (max |diff|): {bad}")

        # Height and width are free: the runtime cuts the canvas's shorter side to the image's.
        _write_checked(_Contract(model, names).eval(), dummy, Path(path), names,
                       {INPUT_NAME: {0: "N", 2: "H", 3: "W"}} | {n: {0: "N", 1: "A"} for n in names},
                       {"facemtl_model": str(name), "facemtl_detector": model.spec.to_json()},
                       compare if check else None)
        return names
    finally:
        model.train(was_training)


def export_generator(generator: nn.Module, path: str | Path, lr_size: int, atol: float = 0.05) -> None:
    """Write a super-resolution generator (:mod:`facemtl.models.superres`) as ONNX: input ``image``
    (N, 3, h, w) BGR 0..255, output :data:`~facemtl.contract.SR_OUTPUT` (N, 3, s·h, s·w), dynamic batch
    and size; metadata ``facemtl_model``, ``facemtl_sr_scale``, ``facemtl_sr_lr_size`` (the
    low-resolution size it was trained on). Checked against torch on an input of another size than
    the traced one (within ``atol`` grey levels); written only once it passed."""
    import onnxruntime as ort

    generator = generator.eval()
    gen = torch.Generator().manual_seed(0)

    def compare(traced: str) -> None:
        x = torch.rand(2, 3, lr_size + 3, lr_size + 5, generator=gen) * 255
        with torch.no_grad():
            want = generator(x).numpy()
        got = ort.InferenceSession(traced, providers=["CPUExecutionProvider"]).run(None, {INPUT_NAME: x.numpy()})[0]
        err = float(np.abs(got - want).max())
        if not err <= atol:
            raise RuntimeError(f"{path}: not written, onnxruntime differs from torch by {err:.3g} > {atol:g}")

    meta = {"facemtl_model": getattr(generator, "facemtl_name", "sr_generator"),
            "facemtl_sr_scale": str(generator.scale), "facemtl_sr_lr_size": str(lr_size)}
    _write_checked(generator, torch.rand(1, 3, lr_size, lr_size, generator=gen) * 255, Path(path), [SR_OUTPUT],
                   {INPUT_NAME: {0: "N", 2: "H", 3: "W"}, SR_OUTPUT: {0: "N", 2: "sH", 3: "sW"}}, meta, compare)

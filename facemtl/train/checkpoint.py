"""The training checkpoint: its layout, writing it atomically, and reading it back.

A checkpoint is a ``torch.save`` dict with the keys ``model``, ``criterion`` (the learned task
weights), ``optimizer``, ``rng`` (torch's global generator), ``step`` and ``config``
(:meth:`TrainConfig.to_dict`). The trainer writes it; resuming, initialising from another run,
evaluation, export and the studies read it through this module.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from facemtl.io import FileError, write_atomic
from facemtl.train.config import TrainConfig

CHECKPOINT_NAME = "last.pt"  # in the run folder


def save_checkpoint(path: str | Path, model: torch.nn.Module, criterion: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, step: int, cfg: TrainConfig) -> None:
    """Write the checkpoint through :func:`facemtl.io.write_atomic`: a crash mid-write leaves the
    previous checkpoint intact."""
    write_state({"model": model.state_dict(), "criterion": criterion.state_dict(), "optimizer": optimizer.state_dict(),
            "rng": torch.get_rng_state(), "step": step, "config": cfg.to_dict()}, path)


def save_weights(path: str | Path, model: torch.nn.Module, step: int, cfg: TrainConfig) -> None:
    """A finished model only (``model``, ``step``, ``config``): enough for :func:`load_trained`
    and export, not for ``--resume``."""
    write_state({"model": model.state_dict(), "step": step, "config": cfg.to_dict()}, path)


def keep_weights(checkpoint: str | Path, path: str | Path, model: torch.nn.Module | None = None) -> None:
    """The model of ``checkpoint`` (or ``model``, e.g. as calibrated at export, with the checkpoint's
    step and config) as a weights-only file with float16 tensors (half the size, small enough to
    commit): a later run's ``init`` (:func:`initialise` casts them back), not a ``--resume``."""
    state = read_checkpoint(checkpoint)
    weights = state["model"] if model is None else model.state_dict()
    half = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    write_state({"model": half, "step": state.get("step", 0), "config": state["config"]}, path)


def average_weights(checkpoints: list[str | Path], path: str | Path) -> None:
    """The mean of several checkpoints' weights (a "model soup", Wortsman et al. 2022: fine-tunes of
    one starting point average into one model), weights-only with the last checkpoint's step and
    config. Batch-norm statistics are averaged too; integer tensors (counters) are the last one's.
    The models must have the same tensors; :class:`ValueError` names the first that differs."""
    states = [read_checkpoint(c) for c in checkpoints]
    last = states[-1]
    for c, state in zip(checkpoints, states):
        if state["model"].keys() != last["model"].keys():
            raise ValueError(f"{c}: not the same model as {checkpoints[-1]} (other tensors)")
        for k, v in state["model"].items():
            if v.shape != last["model"][k].shape:
                raise ValueError(f"{c}: {k} is {tuple(v.shape)}, {tuple(last['model'][k].shape)} in {checkpoints[-1]}")
    mean = {k: (sum(s["model"][k].float() for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v
            for k, v in last["model"].items()}
    write_state({"model": mean, "step": last.get("step", 0), "config": last["config"]}, path)


def write_state(state: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` of ``state`` through :func:`facemtl.io.write_atomic` (every checkpoint writer
    goes through it: a crash mid-write leaves the previous file intact)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def read_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The checkpoint dict (tensors on ``device``), unpickled with ``weights_only=True``: only
    tensors, numbers, strings and plain containers are rebuilt, so a downloaded ``.pt`` that
    carries code (a pickled callable) is refused instead of run. :class:`FileError` otherwise."""
    import pickle

    path = Path(path)
    if not path.is_file():
        raise FileError(path, "checkpoint not found")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FileError(path, f"refused: holds more than tensors, numbers, strings and plain containers "
                              f"(maybe code): {first}") from e
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError, TypeError) as e:
        raise FileError(path, f"not a readable checkpoint ({type(e).__name__}: {str(e)[:200]})") from e
    if not isinstance(state, dict) or not {"model", "config"} <= set(state):
        raise FileError(path, "not a facemtl checkpoint (no 'model' and 'config' entries)")
    return state


def restore(state: dict[str, Any], model: torch.nn.Module, criterion: torch.nn.Module,
            optimizer: torch.optim.Optimizer) -> int:
    """Resume exactly: model, task weights, optimiser and torch's RNG; returns the step."""
    model.load_state_dict(state["model"])
    criterion.load_state_dict(state["criterion"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    return state["step"]


def initialise(state: dict[str, Any], model: torch.nn.Module, criterion: torch.nn.Module) -> None:
    """Start a new run from another run's weights (config ``init``); a weights-only file
    (:func:`save_weights`, or float16 weights) works too: its task weights start at 0."""
    # A shallower backbone (EfficientNetLite's repeats) starts from the full one's kept blocks.
    slim = getattr(getattr(model, "backbone", None), "from_full", None)
    model.load_state_dict(slim(state["model"], prefix="backbone.") if slim else state["model"])  # fp16 is cast
    # Task weights the config still uses keep their learned values; new ones start at 0.
    criterion.load_state_dict(state.get("criterion", {}), strict=False)


def load_trained(path: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, TrainConfig]:
    """The model (eval mode) and config stored in a checkpoint."""
    state = read_checkpoint(path, device)
    cfg = TrainConfig.from_dict(state["config"])
    model = untrained_model(cfg)
    model.load_state_dict(state["model"])
    return model.eval(), cfg


def untrained_model(cfg: TrainConfig) -> torch.nn.Module:
    """``cfg``'s model for weights that will replace its starting point (no ImageNet weights read)."""
    from facemtl.models import create_model

    options = cfg.model_options | ({"pretrained": False} if "pretrained" in cfg.model_options else {})
    return create_model(cfg.model, **options)


def torch_predictor(model: torch.nn.Module, device: torch.device) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A :data:`facemtl.contract.Predict` for a torch model (uint8 BGR crops in)."""

    def predict(crops: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2))).float().to(device)
        with torch.no_grad():
            out = model.decode(model(x))
        return {k: v.float().cpu().numpy() for k, v in out.items()}

    return predict

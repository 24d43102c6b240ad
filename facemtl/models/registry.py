"""Name -> constructor registries for task models and backbones (timm-style decorators)."""

from __future__ import annotations

from typing import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_BACKBONES: dict[str, Callable[..., nn.Module]] = {}


def _register(table: dict[str, Callable[..., nn.Module]], fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    if fn.__name__ in table:
        raise ValueError(f"{fn.__name__!r} is registered twice")
    table[fn.__name__] = fn
    return fn


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a task-model constructor under its function name."""
    return _register(_MODELS, fn)


def register_backbone(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a backbone constructor (returns stage features) under its function name."""
    return _register(_BACKBONES, fn)


def _lookup(table: dict[str, Callable[..., nn.Module]], kind: str, name: str) -> Callable[..., nn.Module]:
    if name not in table:
        raise KeyError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the registered task model ``name``; the instance remembers it as ``model.facemtl_name``."""
    model = _lookup(_MODELS, "model", name)(**kwargs)
    model.facemtl_name = name
    return model


def create_backbone(name: str, **kwargs) -> nn.Module:
    """Build the registered backbone ``name`` (see :mod:`facemtl.models.resnet`, :mod:`.mobilenet`)."""
    return _lookup(_BACKBONES, "backbone", name)(**kwargs)


def list_models() -> list[str]:
    return sorted(_MODELS)


def list_backbones() -> list[str]:
    return sorted(_BACKBONES)

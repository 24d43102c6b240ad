"""Training configuration: one YAML file per named model (``facemtl/configs/NAME.yaml``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


# The configs that ship with the package (the shipped model's and the studies').
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class UnsupportedOption(ValueError):
    """A training loop was asked for what it does not do (e.g. ``--resume`` of the expression loop);
    raised before any work, so the command line can say it in one line."""


def cpu_only(name: str, device: str | None) -> None:
    """Raise :class:`UnsupportedOption` unless ``device`` is None or ``cpu`` (loop ``name`` is CPU-only)."""
    if device not in (None, "cpu"):
        raise UnsupportedOption(f"{name}: this trainer runs on the CPU only, not on {device!r}")


def config_path(name_or_path: str | Path) -> Path:
    """``name_or_path`` itself when it is a file, else the shipped config of that name
    (``default`` -> ``facemtl/configs/default.yaml``); a missing file stays as given, so the
    error names it."""
    path = Path(name_or_path)
    shipped = CONFIG_DIR / f"{path.name}.yaml"
    if not path.is_file() and path.suffix == "" and len(path.parts) == 1 and shipped.is_file():
        return shipped
    return path


def read_yaml(name_or_path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The mapping of a config file (or shipped name), with its ``base:`` config laid under it.

    ``base: NAME`` names another config (a file in this one's folder, with or without ``.yaml``, or a
    shipped name) whose keys this one inherits; a key given here replaces the base's whole value (a
    mapping is not merged key by key, so ``model_options`` never mixes two models'). ``name``
    defaults to the file's stem, never the base's. Raises ``ValueError`` naming the file for an
    unreadable, non-mapping or circular config."""
    import yaml

    path = config_path(name_or_path)
    try:
        d = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: cannot read config: {e}") from e
    if not isinstance(d, dict):
        raise ValueError(f"{path}: config must be a mapping")
    if path.resolve() in _seen:
        raise ValueError(f"{path}: circular base: {' -> '.join(p.name for p in _seen)}")
    base = d.pop("base", None)
    if base is not None:
        local = [path.parent / str(base), path.parent / f"{base}.yaml"]
        base_path = next((p for p in local if p.is_file()), config_path(str(base)))
        inherited = read_yaml(base_path, _seen + (path.resolve(),))
        inherited.pop("name")
        d = {**inherited, **d}
    d.setdefault("name", path.stem)
    return d


@dataclass
class DataSpec:
    """One training source.

    ``type``: ``synth`` (rendered on the fly by :mod:`facemtl.synth`), ``fer2013`` (expression
    arrays), or ``dataset`` (any reader of :mod:`facemtl.data.registry`, by ``name``).
    ``weight``: share of the batches drawn from it. ``options``: passed to the source.
    ``labels``: the labels to train on from this source (default all it has), e.g. leave out
    ``expression`` where a source's expression labels are not trustworthy.
    """

    type: str
    weight: float = 1.0
    name: str | None = None
    root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    labels: list[str] | None = None


@dataclass
class TrainConfig:
    name: str
    model: str
    model_options: dict[str, Any] = field(default_factory=dict)
    input_size: int = 128
    crop_scale: float = 1.5
    seed: int = 0
    steps: int = 10_000
    epoch_steps: int = 1_000  # validation, checkpoint and data-epoch period
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    loss_options: dict[str, Any] = field(default_factory=dict)
    augment: dict[str, Any] = field(default_factory=dict)
    data: list[DataSpec] = field(default_factory=list)
    val: dict[str, Any] = field(default_factory=dict)  # {"synth_n": 256, "aflw2000": path, ...}
    checkpoint_every: int = 500
    workers: int = 2
    threads: int = 0  # torch intra-op threads of the training process (0: torch's default)
    loss_weight_lr: float = 0.05  # learning rate of learned task weights (uncertainty weighting)
    log_every: int = 20
    # Fine-tuning: start from the model (and learned task weights) of this checkpoint, with this
    # config's own step count and schedule; relative paths are from the working directory.
    init: str | None = None
    # Detector only: learn from a trained detector's features and outputs as well (knowledge
    # distillation): {teacher: CHECKPOINT, labels: weight of the label loss beside it (default 1)}.
    distill: dict[str, Any] = field(default_factory=dict)
    # Inputs the project makes itself: path -> the command that makes it (``facemtl train``
    # stops with that command when the path is missing, instead of failing mid-way).
    prepare: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        d = dict(d)
        d["data"] = [DataSpec(**x) for x in d.get("data", [])]
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        """Read a YAML config: a file, or the name of a shipped one (:func:`config_path`), with its
        ``base:`` (:func:`read_yaml`)."""
        d = read_yaml(path)
        try:
            return cls.from_dict(d)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{config_path(path)}: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

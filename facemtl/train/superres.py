"""Super-resolution training (Super-FAN in small): ``facemtl train --config superres [--resume]``.

A super-resolution config (``facemtl/configs/superres*.yaml``) says ``task: superres``; ``facemtl
train`` hands it here. The generator (:mod:`facemtl.models.superres`) learns to turn degraded
``lr_size`` face crops (:func:`facemtl.data.degrade.degrade`) into the ``scale x lr_size`` crop:

* ``pixel``: L1 (or L2) between the super-resolved and the original crop, in 0..1 units;
* ``heatmap``: KL divergence from the frozen landmark critic's heatmaps of the original crop to
  its heatmaps of the super-resolved one (Super-FAN's heatmap loss; the critic's own reading of
  the sharp face is the target, so unlabelled faces count too);
* ``adversarial``: least-squares GAN term against the patch discriminator (weight 0: the variant
  without it).

Faces: the analyzer's crop (:func:`facemtl.contract.crop_face`, ``crop_scale``) of the landmark box
of the 300-W training faces (the 100 held-out helen-train faces excluded in the shipped config) and of
LFW (landmarks of ``facemtl/assets/lfw_landmarks.npz``), cut once into ``RUN/hr_crops_*.npy``.
Batch ``b`` is a pure function of ``(seed, b)`` and the checkpoint holds both networks, both
optimisers and torch's RNG, so ``--resume`` continues exactly.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from facemtl.data.degrade import Degradation, degrade
from facemtl.train.checkpoint import CHECKPOINT_NAME, load_trained, read_checkpoint, write_state
from facemtl.train.log import CsvLog

TASK = "superres"
LOSSES = ("pixel", "heatmap", "adversarial")
LFW_LANDMARKS = Path(__file__).resolve().parents[1] / "assets" / "lfw_landmarks.npz"


@dataclass
class SRConfig:
    """One super-resolution run. ``data``: a list of ``{name, root, options}``: a dataset of
    :func:`facemtl.data.registry.load_dataset` with landmarks, or ``name: lfw`` (a folder of LFW
    photos). ``weights``: of :data:`LOSSES`. ``critic``: a heatmap-landmark checkpoint
    (the shipped configs: the main model's committed weights)."""

    name: str
    task: str = TASK
    generator: dict[str, Any] = field(default_factory=dict)
    discriminator: dict[str, Any] = field(default_factory=dict)
    critic: str | None = None
    lr_size: int = 16
    crop_scale: float = 1.5
    data: list[dict[str, Any]] = field(default_factory=list)
    degradation: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    pixel_loss: str = "l1"
    seed: int = 0
    steps: int = 1000
    batch_size: int = 16
    lr: float = 5e-4
    lr_discriminator: float = 2e-4
    warmup_steps: int = 20
    checkpoint_every: int = 50
    log_every: int = 10
    threads: int = 1
    prepare: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SRConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown super-resolution config keys: {', '.join(sorted(unknown))}")
        cfg = cls(**d)
        bad = set(cfg.weights) - set(LOSSES)
        if bad or cfg.pixel_loss not in ("l1", "l2"):
            raise ValueError(f"weights must name {LOSSES} (got {sorted(bad)}), pixel_loss l1 or l2")
        return cfg

    def weight(self, loss: str) -> float:
        return float(self.weights.get(loss, 1.0 if loss == "pixel" else 0.0))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_config(path: str | Path) -> dict[str, Any] | None:
    """The YAML mapping of a config (a file or a shipped name, with its ``base:``) when it is a
    super-resolution one, else None."""
    from facemtl.train.config import read_yaml

    try:
        d = read_yaml(path)
    except ValueError:
        return None  # not ours to report: the ordinary config reader says what is wrong
    return d if d.get("task") == TASK else None


# ---- data -----------------------------------------------------------------------------------------


def face_boxes(spec: dict[str, Any]) -> list[tuple[str, np.ndarray]]:
    """``(image path, landmark box)`` of every face of one data source (see :class:`SRConfig`)."""
    from facemtl.contract import landmark_box

    root = Path(spec["root"])
    if spec["name"] == "lfw":
        table = np.load(LFW_LANDMARKS)
        out = [(str(root / p), landmark_box(lm.astype(np.float64))) for p, lm in zip(table["path"], table["landmarks"])]
        return [(p, b) for p, b in out if np.isfinite(b).all() and Path(p).is_file()]
    from facemtl.data.registry import load_dataset

    samples = load_dataset(spec["name"], root, **spec.get("options", {}))
    return [(s.image_path, landmark_box(s.landmarks)) for s in samples if s.landmarks is not None]


def crops_cache(cfg: SRConfig, out: Path, size: int) -> Path:
    """The run's crop cache, named by what the crops depend on (the data, the crop scale, the size)."""
    import hashlib
    import json

    # "lfw-inpainted": LFW crops made before its drawings were inpainted must not be reused.
    key = hashlib.md5(json.dumps([cfg.data, cfg.crop_scale, size, "lfw-inpainted"],
                                 sort_keys=True).encode()).hexdigest()[:8]
    return out / f"hr_crops_{size}_{key}.npy"


def hr_crops(cfg: SRConfig, size: int, cache: Path | None = None) -> np.ndarray:
    """(N, size, size, 3) uint8 crops of every face of ``cfg.data``; read from / written to ``cache``."""
    from facemtl.contract import crop_face
    from facemtl.io import FileError, read_image

    if cache is not None and cache.is_file():
        crops = np.load(cache)
        if crops.shape[1:] == (size, size, 3):
            return crops
    from facemtl.synth.texture import remove_overlay

    crops = []
    for spec in cfg.data:
        # The shared LFW copy has a green box and landmark dots burned into every face: inpainted,
        # or the generator learns to draw them.
        clean = remove_overlay if spec["name"] == "lfw" else (lambda image: image)
        for path, box in face_boxes(spec):
            try:
                crops.append(crop_face(clean(read_image(path)), box, cfg.crop_scale, size)[0])
            except FileError:
                continue  # an unreadable photo is one face fewer
    if not crops:
        raise ValueError(f"{cfg.name}: no training face in {[d.get('root') for d in cfg.data]}")
    crops = np.stack(crops)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, crops)
    return crops


def make_batch(crops: np.ndarray, cfg: SRConfig, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Step ``step``'s ``(low-res, high-res)`` float BGR 0..255 batch: random faces, random flips,
    random degradations; a pure function of ``(cfg.seed, step)``."""
    rng = np.random.default_rng([cfg.seed, step])
    d = Degradation(**cfg.degradation)
    lows, highs = [], []
    for i in rng.integers(0, len(crops), cfg.batch_size):
        hr = crops[i][:, ::-1] if rng.random() < 0.5 else crops[i]
        hr = np.ascontiguousarray(hr)
        lows.append(degrade(hr, cfg.lr_size, rng, d))
        highs.append(hr)

    def tensor(images: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).astype(np.float32))

    return tensor(lows), tensor(highs)


# ---- losses ---------------------------------------------------------------------------------------


def pixel_loss(sr: torch.Tensor, hr: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean L1 or squared error in 0..1 units."""
    d = (sr - hr) / 255.0
    return d.abs().mean() if kind == "l1" else (d * d).mean()


def critic_heatmaps(critic: torch.nn.Module, image: torch.Tensor, size: int) -> torch.Tensor:
    """The critic's heatmap logits of BGR 0..255 images resized to its input ``size``."""
    if image.shape[-1] != size:
        image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return critic(image)["heatmaps"]


def heatmap_loss(sr_heatmaps: torch.Tensor, hr_heatmaps: torch.Tensor) -> torch.Tensor:
    """KL(softmax(hr) || softmax(sr)) per landmark heatmap, averaged; 0 when the critic reads both
    faces alike. The critic decodes by soft-argmax, so its heatmaps are distributions."""
    log_t = torch.log_softmax(hr_heatmaps.detach().flatten(2), dim=-1)
    log_p = torch.log_softmax(sr_heatmaps.flatten(2), dim=-1)
    return (log_t.exp() * (log_t - log_p)).sum(-1).mean()


class Losses:
    """The weighted loss of the generator and the discriminator's own loss (LSGAN)."""

    def __init__(self, cfg: SRConfig, discriminator: torch.nn.Module | None, critic: torch.nn.Module | None,
                 critic_size: int = 0):
        self.cfg, self.discriminator, self.critic, self.critic_size = cfg, discriminator, critic, critic_size
        if cfg.weight("heatmap") > 0 and critic is None:
            raise ValueError(f"{cfg.name}: the heatmap loss needs a critic checkpoint")
        if cfg.weight("adversarial") > 0 and discriminator is None:
            raise ValueError(f"{cfg.name}: the adversarial loss needs a discriminator")

    def generator(self, sr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.cfg
        parts = {"pixel": pixel_loss(sr, hr, cfg.pixel_loss)}
        if cfg.weight("heatmap") > 0:
            with torch.no_grad():
                target = critic_heatmaps(self.critic, hr, self.critic_size)
            parts["heatmap"] = heatmap_loss(critic_heatmaps(self.critic, sr, self.critic_size), target)
        if cfg.weight("adversarial") > 0:
            parts["adversarial"] = ((self.discriminator(sr) - 1) ** 2).mean()
        total = sum(cfg.weight(k) * v for k, v in parts.items())
        return total, parts

    def discriminator_loss(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        d = self.discriminator
        return ((d(hr) - 1) ** 2).mean() + (d(sr.detach()) ** 2).mean()


# ---- training -------------------------------------------------------------------------------------


def save(path: Path, nets: dict[str, torch.nn.Module], optims: dict[str, torch.optim.Optimizer], step: int,
         cfg: SRConfig) -> None:
    """The checkpoint (atomic): ``model`` (the generator), ``discriminator``, the optimisers, torch's
    RNG, ``step`` and ``config``; :func:`facemtl.train.checkpoint.read_checkpoint` reads it."""
    state = {"model": nets["generator"].state_dict(), "rng": torch.get_rng_state(), "step": step,
             "config": cfg.to_dict()}
    state |= {k: v.state_dict() for k, v in nets.items() if k != "generator"}
    state |= {f"optimizer_{k}": v.state_dict() for k, v in optims.items()}
    write_state(state, path)


def load_generator(path: str | Path) -> tuple[torch.nn.Module, SRConfig]:
    """The generator (eval mode) and config of a super-resolution checkpoint."""
    from facemtl.models import create_model

    state = read_checkpoint(path)
    cfg = SRConfig.from_dict(state["config"])
    generator = create_model("sr_generator", **cfg.generator)
    generator.load_state_dict(state["model"])
    return generator.eval(), cfg


def load_critic(checkpoint: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, int]:
    """The frozen heatmap landmark critic of a ``facemtl train`` checkpoint, and its input size.

    The model must output ``heatmaps`` (a multi-task net with the heatmap landmark head)."""
    model, cfg = load_trained(checkpoint, str(device))
    if getattr(model, "landmark_mode", None) != "heatmap":
        raise ValueError(f"{checkpoint}: the critic must be a model with heatmap landmarks ({cfg.model})")
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), cfg.input_size


def build(cfg: SRConfig) -> tuple[dict[str, torch.nn.Module], dict[str, torch.optim.Optimizer], Losses]:
    """The networks, their Adam optimisers and the losses of ``cfg``."""
    from facemtl.models import create_model

    nets = {"generator": create_model("sr_generator", **cfg.generator)}
    optims = {"generator": torch.optim.Adam(nets["generator"].parameters(), lr=cfg.lr, betas=(0.9, 0.99))}
    if cfg.weight("adversarial") > 0:
        nets["discriminator"] = create_model("sr_discriminator", **cfg.discriminator)
        optims["discriminator"] = torch.optim.Adam(nets["discriminator"].parameters(), lr=cfg.lr_discriminator,
                                                   betas=(0.5, 0.99))
    critic, critic_size = (None, 0)
    if cfg.weight("heatmap") > 0:
        if not cfg.critic or not Path(cfg.critic).is_file():
            how = cfg.prepare.get(cfg.critic or "")
            raise FileNotFoundError(f"{cfg.critic}: no landmark critic (a checkpoint of a model with heatmap "
                                    f"landmarks){'; make it first with: ' + how if how else ''}")
        critic, critic_size = load_critic(cfg.critic)
    return nets, optims, Losses(cfg, nets.get("discriminator"), critic, critic_size)


def train_step(nets: dict[str, torch.nn.Module], optims: dict[str, torch.optim.Optimizer], losses: Losses,
               low: torch.Tensor, high: torch.Tensor, lr: float) -> dict[str, float]:
    """One generator step and, with the adversarial term, one discriminator step; the loss values."""
    for group in optims["generator"].param_groups:
        group["lr"] = lr
    sr = nets["generator"](low)
    total, parts = losses.generator(sr, high)
    optims["generator"].zero_grad(set_to_none=True)
    total.backward()
    optims["generator"].step()
    out = {"loss": float(total.detach())} | {k: float(v.detach()) for k, v in parts.items()}
    if "discriminator" in nets:
        d_loss = losses.discriminator_loss(sr, high)
        optims["discriminator"].zero_grad(set_to_none=True)
        d_loss.backward()
        optims["discriminator"].step()
        out["discriminator"] = float(d_loss.detach())
    return out


def train(cfg: SRConfig, out: str | Path, resume: bool = False, device: str | None = None,
          stop_at: int | None = None) -> torch.nn.Module:
    """Train ``cfg`` into ``out`` (``last.pt``, ``metrics.csv``, the crop cache) on the CPU; returns the generator."""
    from facemtl.train.config import cpu_only
    from facemtl.train.trainer import learning_rate

    cpu_only(cfg.name, device)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, cfg.threads))
    torch.manual_seed(cfg.seed)
    scale = int(cfg.generator.get("scale", 4))
    crops = hr_crops(cfg, scale * cfg.lr_size, crops_cache(cfg, out, scale * cfg.lr_size))
    nets, optims, losses = build(cfg)
    step = 0
    log = CsvLog(out / "metrics.csv")
    if resume:
        state = read_checkpoint(out / CHECKPOINT_NAME)
        nets["generator"].load_state_dict(state["model"])
        for k, net in nets.items():
            if k != "generator":
                net.load_state_dict(state[k])
        for k, opt in optims.items():
            opt.load_state_dict(state[f"optimizer_{k}"])
        torch.set_rng_state(state["rng"])
        step = state["step"]
        log.truncate_after(step)
    else:
        (out / "metrics.csv").unlink(missing_ok=True)
    end = min(cfg.steps, stop_at or cfg.steps)
    for net in nets.values():
        net.train()
    tic = time.perf_counter()
    while step < end:
        low, high = make_batch(crops, cfg, step)
        values = train_step(nets, optims, losses, low, high, learning_rate(cfg, step))
        step += 1
        if step % cfg.log_every == 0 or step == end:
            log.write({"step": step} | values)
            rate = (step % cfg.log_every or cfg.log_every) * cfg.batch_size / (time.perf_counter() - tic)
            tic = time.perf_counter()
            print(f"[{cfg.name}] step {step}/{cfg.steps} " + " ".join(f"{k} {v:.4f}" for k, v in values.items())
                  + f" | {rate:.1f} img/s", file=sys.stderr, flush=True)
        if step % cfg.checkpoint_every == 0 or step == end:
            save(out / CHECKPOINT_NAME, nets, optims, step, cfg)
    return nets["generator"].eval()

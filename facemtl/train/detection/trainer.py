"""The detector's training loop (``facemtl train --config mos``).

It reuses the crop trainer's pieces (:mod:`facemtl.train.trainer`: process setup, learning-rate
schedule, AdamW with the learned task weights, init / resume, logs; the checkpoint layout of
:mod:`facemtl.train.checkpoint`, so ``facemtl export`` and ``load_trained`` read it) and
differs where a detector must: canvases with per-anchor targets instead of face crops, the
detection loss, the batch sampler that draws each example's focus from the loss's miss
statistics (MOS data feedback), and validation by AP@0.5 on held-out rendered scenes.

Config ``data`` entries: ``{type: scenes, root: FOLDER}`` (``facemtl synth --scene`` output),
``{type: faces, name: READER, root: FOLDER, options: {...}}`` (any reader whose samples have 68
landmarks, pasted by :class:`~facemtl.train.detection.data.CompositeSource`; ``options.holdout``
as :func:`facemtl.data.registry.load_dataset`), ``{type: lfw, root: FOLDER}`` (LFW with the
shipped pseudo-landmarks, identities of :func:`~facemtl.train.detection.data.lfw_faces`'s training part;
their burned-in drawings inpainted). ``model_options``
carries the anchors (``input_size``, ``sizes``...). ``val``: ``scenes`` (a folder of held-out
renders), ``n_val`` (how many of them).

Resume: the miss rates are in the checkpoint (buffers of the loss), but the sampler reads them a
few batches ahead of training (the loader's prefetch), so a resumed run samples the same kinds
of examples, not bit for bit the same batches as an uninterrupted one.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from facemtl.data.transforms import Augment
from facemtl.geometry.anchors import AnchorSpec, detections, letterbox, priors
from facemtl.progress import Progress
from facemtl.train.checkpoint import CHECKPOINT_NAME, save_checkpoint
from facemtl.train.config import DataSpec, TrainConfig
from facemtl.train.detection.data import (CompositeSource, DetectionDataset, SceneSource, focus_probabilities,
                                          lfw_faces)
from facemtl.train.detection.loss import KINDS, DetectionLoss
from facemtl.train.trainer import (_log, _worker_init, init_or_resume, learning_rate, make_optimizer, open_logs,
                                   setup_process)

def is_detector(cfg: TrainConfig) -> bool:
    """A detector config (its model is a registered ``mos_*`` model)."""
    return cfg.model.startswith("mos_")


def build_source(spec: DataSpec, size: int):
    """A canvas source from a config ``data`` entry (module docstring)."""
    options = dict(spec.options)
    if spec.type == "scenes":
        from facemtl.data.mat3ddfa import read_synth_scenes

        return SceneSource(read_synth_scenes(spec.root), size, **options)
    if spec.type == "faces":
        from facemtl.data.registry import load_dataset

        reader = {k: options.pop(k) for k in ("holdout", "holdout_n") if k in options}
        return CompositeSource(load_dataset(spec.name, spec.root, **reader), size, **options)
    if spec.type == "lfw":
        return CompositeSource(lfw_faces(spec.root, "train"), size, **({"clean": True} | options))
    raise ValueError(f"unknown detector data type {spec.type!r} (scenes, faces, lfw)")


class FeedbackBatches(torch.utils.data.Sampler):
    """Keys ``(epoch, index, focus)`` of steps ``start .. stop``; each example's focus (-1: none,
    else an index into KINDS) is drawn from the loss's current miss rates when the batch is
    asked for (a few batches ahead of training, the loader's prefetch)."""

    def __init__(self, cfg: TrainConfig, start: int, stop: int, rank: int, world: int, criterion: DetectionLoss):
        self.cfg, self.start, self.stop, self.rank, self.world = cfg, start, stop, rank, world
        self.criterion = criterion

    def __iter__(self):
        cfg = self.cfg
        for step in range(self.start, self.stop):
            epoch, b = divmod(step, cfg.epoch_steps)
            first = (b * self.world + self.rank) * cfg.batch_size
            p = focus_probabilities(self.criterion.miss.detach().cpu().numpy())
            focus = np.random.default_rng((cfg.seed, step, self.rank)).choice(len(p), cfg.batch_size, p=p) - 1
            yield [(epoch, first + i, int(f)) for i, f in enumerate(focus)]

    def __len__(self) -> int:
        return self.stop - self.start


def make_loader(cfg: TrainConfig, spec: AnchorSpec, criterion: DetectionLoss, rank: int, world: int,
                start: int, end: int) -> torch.utils.data.DataLoader:
    dataset = DetectionDataset([build_source(s, spec.input_size) for s in cfg.data], [s.weight for s in cfg.data],
                               spec, Augment(**cfg.augment), cfg.seed)
    return torch.utils.data.DataLoader(dataset, batch_sampler=FeedbackBatches(cfg, start, end, rank, world, criterion),
                                       num_workers=cfg.workers, worker_init_fn=_worker_init,
                                       persistent_workers=cfg.workers > 0,
                                       generator=torch.Generator().manual_seed(cfg.seed))


@torch.no_grad()
def detect_torch(model: torch.nn.Module, image: np.ndarray, anchors: np.ndarray,
                 score: float = 0.02) -> dict[str, np.ndarray]:
    """Faces of one image with the torch model (eval mode), in image pixels: the runtime's
    letterbox and decoding (:mod:`facemtl.geometry.anchors`), torch instead of onnxruntime."""
    from facemtl.geometry.anchors import from_canvas

    spec = model.spec
    canvas, scale = letterbox(image, spec.input_size)
    x = torch.from_numpy(canvas.transpose(2, 0, 1)[None].astype(np.float32))
    out = {k: v[0].numpy() for k, v in model.decode(model(x)).items()}
    found = detections(out["scores"], out["box_deltas"], out["point_deltas"], anchors, spec, score)
    return {"boxes": from_canvas(found["boxes"], scale), "scores": found["scores"],
            "points": from_canvas(found["points"], scale), "rotation": out["rotation"][found["index"]]}


def scene_ap(model: torch.nn.Module, samples: list, min_visible: float = 0.3) -> float:
    """AP@0.5 on rendered scenes against the landmark boxes; faces seen less than ``min_visible``
    are WIDER-style ignored boxes."""
    from facemtl.metrics.detection import average_precision

    anchors = priors(model.spec)
    was = model.training
    model.eval()
    pb, ps, gb, gi = [], [], [], []
    for s in samples:
        found = detect_torch(model, s.load_image(), anchors)
        pb.append(found["boxes"])
        ps.append(found["scores"])
        gb.append(s.meta["landmark_boxes"])
        gi.append(np.nanmean(s.meta["visibility"], axis=1) < min_visible)
    model.train(was)
    return average_precision(pb, ps, gb, gi)


def train_detector(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, device: str | None = None,
                   stop_at: int | None = None) -> torch.nn.Module:
    """Train the detector ``cfg`` into ``out_dir`` (``last.pt``, ``metrics.csv``, ``val.csv``)."""
    from facemtl.models import create_model

    proc = setup_process(cfg, out_dir, device)
    if proc.world > 1:
        raise ValueError("the detector trains in one process (its data feedback is per process)")
    model = create_model(cfg.model, **cfg.model_options).to(proc.device)
    if model.spec.input_size != cfg.input_size:
        raise ValueError(f"{cfg.name}: input_size {cfg.input_size} but the anchors are laid out for "
                         f"model_options.input_size {model.spec.input_size}")
    criterion = DetectionLoss(**cfg.loss_options).to(proc.device)
    optimizer = make_optimizer(cfg, model, criterion)
    step = init_or_resume(cfg, model, criterion, optimizer, proc, resume)
    end = min(cfg.steps, stop_at or cfg.steps)
    loader = make_loader(cfg, model.spec, criterion, proc.rank, proc.world, step, end)
    val = _val_scenes(cfg)
    log, val_log = open_logs(proc, resume, step)
    model.train()
    tic, seen = time.perf_counter(), 0
    bar = Progress(max(end - step, 0), f"train {cfg.name}", unit="step")
    for batch in (loader if step < end else []):
        batch = {k: v.to(proc.device) for k, v in batch.items()}
        for group in optimizer.param_groups:
            if group["role"] == "model":
                group["lr"] = learning_rate(cfg, step)
        total, parts = criterion(model(batch["image"]), batch)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        step += 1
        seen += len(batch["image"])
        bar.update(1)
        if step % cfg.log_every == 0 or step == end:
            _write_log(cfg, log, step, total, parts, criterion, seen / (time.perf_counter() - tic))
        epoch_end = step % cfg.epoch_steps == 0 or step == end
        if epoch_end and val:
            ap = scene_ap(model, val)
            val_log.write({"step": step, "set": "scenes", "ap50": ap})
            _log(f"[{cfg.name}] val scenes @ {step}: AP@0.5 {ap:.3f}")
        if epoch_end or step % cfg.checkpoint_every == 0:
            save_checkpoint(proc.out / CHECKPOINT_NAME, model, criterion, optimizer, step, cfg)
    bar.close()
    return model


def _val_scenes(cfg: TrainConfig) -> list:
    root = cfg.val.get("scenes")
    if not root or not Path(root).is_dir():
        return []
    from facemtl.data.mat3ddfa import read_synth_scenes

    return read_synth_scenes(root)[:int(cfg.val.get("n_val", 100))]


def _write_log(cfg: TrainConfig, log, step: int, total: torch.Tensor, parts: dict[str, torch.Tensor],
               criterion: DetectionLoss, rate: float) -> None:
    losses = {k: float(v.detach()) for k, v in parts.items()}
    miss = dict(zip(KINDS + ("all",), criterion.miss.tolist()))
    log.write({"step": step, "lr": learning_rate(cfg, step - 1), "loss": float(total.detach()), "images_per_s": rate}
              | {f"loss_{k}": v for k, v in losses.items()} | {f"miss_{k}": v for k, v in miss.items()})
    _log(f"[{cfg.name}] step {step}/{cfg.steps} loss {float(total.detach()):.4f} "
         + " ".join(f"{k} {v:.3f}" for k, v in losses.items()) + f" | miss all {miss['all']:.2f} "
         + " ".join(f"{k} {v:.2f}" for k, v in miss.items() if k != "all") + f" | {rate:.1f} img/s")

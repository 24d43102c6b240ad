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

from pathlib import Path

import numpy as np
import torch

from facemtl.data.transforms import Augment
from facemtl.geometry.anchors import AnchorSpec, detections, priors
from facemtl.geometry.rotations import sixd_to_matrix
from facemtl.train.checkpoint import load_trained
from facemtl.train.config import DataSpec, TrainConfig
from facemtl.train.detection.data import (CompositeSource, DetectionDataset, SceneSource, focus_probabilities,
                                          lfw_faces)
from facemtl.train.detection.loss import KINDS, DetectionLoss, distillation_losses, stride8_distillation
from facemtl.train.trainer import (_log, _Loop, _worker_init, init_or_resume, make_optimizer, open_logs,
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
def detect_torch(model: torch.nn.Module, image: np.ndarray, score: float = 0.02) -> dict[str, np.ndarray]:
    """Faces of one image with the torch model (eval mode), in image pixels: the runtime's
    letterbox and decoding (:mod:`facemtl.infer.mos_detector`), torch instead of onnxruntime."""
    from facemtl.geometry.anchors import from_canvas, run_canvas

    spec = model.spec
    canvas, scale = run_canvas(image, spec.input_size)
    x = torch.from_numpy(canvas.transpose(2, 0, 1)[None].astype(np.float32))
    out = {k: v[0].numpy() for k, v in model.decode(model(x)).items()}
    found = detections(out["scores"], out["box_deltas"], out["point_deltas"], priors(spec, canvas.shape[:2]),
                       spec, score)
    return {"boxes": from_canvas(found["boxes"], scale), "scores": found["scores"],
            "points": from_canvas(found["points"], scale), "rotation": sixd_to_matrix(out["rot6d"][found["index"]])}


def scene_ap(model: torch.nn.Module, samples: list, min_visible: float = 0.3) -> float:
    """AP@0.5 on rendered scenes against the landmark boxes; faces seen less than ``min_visible``
    are WIDER-style ignored boxes."""
    from facemtl.metrics.detection import average_precision

    was = model.training
    model.eval()
    pb, ps, gb, gi = [], [], [], []
    for s in samples:
        found = detect_torch(model, s.load_image())
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
    loop = _DetectorLoop(cfg, proc, model, model, criterion, optimizer, {"scenes": val} if val else {}, log, val_log)
    if cfg.distill:
        stride = cfg.distill.get("stride")
        if stride is not None and (stride != 8 or cfg.model_options.get("trained_stride") != 8):
            raise ValueError(f"{cfg.name}: distill.stride must be 8, with model_options.trained_stride 8")
        loop.teacher = load_trained(cfg.distill["teacher"], proc.device)[0].requires_grad_(False)
        for m in (model, loop.teacher):  # depthwise convs on a CPU: 2x faster in torch channels-last
            m.to(memory_format=torch.channels_last)
        loop.shared_stride8 = _same_frozen_layers(model, loop.teacher, 8)
    loop.run(loader, step, end)
    return model


class _DetectorLoop(_Loop):
    """The crop trainer's loop, validated by AP@0.5 on held-out scenes, with the loss's miss rates
    (the data feedback's statistics) in the step log; with a ``teacher`` (config ``distill``) the
    loss adds :func:`~facemtl.train.detection.loss.distillation_losses` to the label loss, or with
    ``distill: {stride: 8}`` is :func:`~facemtl.train.detection.loss.stride8_distillation` alone."""

    teacher: torch.nn.Module | None = None
    shared_stride8 = False

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.teacher is None:
            return super().loss(batch)
        image = batch["image"].contiguous(memory_format=torch.channels_last)  # as the models (train_detector)
        if self.cfg.distill.get("stride"):  # a new stem against the teacher's stride-8 feature
            loss = stride8_distillation(self.model, self.teacher, image)
            return loss, {"features": loss}
        with torch.no_grad():
            teacher_feats = self.teacher.features(image)
            teacher_out = self.teacher.from_features(teacher_feats)
        if self.shared_stride8:  # the frozen layers are the teacher's: their feature is computed once
            backbone = self.model.backbone
            feats = [teacher_feats[0], *backbone.blocks_from(teacher_feats[0], backbone._taps[1] + 1)]
        else:
            feats = self.model.features(image)
        out = self.model.from_features(feats)
        labelled, parts = self.criterion(out, batch)
        distilled = distillation_losses(feats, out, teacher_feats, teacher_out)
        total = float(self.cfg.distill.get("labels", 1.0)) * labelled + sum(distilled.values())
        return total, parts | distilled

    def log_extras(self) -> dict[str, float]:
        return {f"miss_{k}": v for k, v in zip(KINDS + ("all",), self.criterion.miss.tolist())}

    def validate(self, step: int) -> None:
        ap = scene_ap(self.model, self.val_sets["scenes"])
        self.val_log.write({"step": step, "set": "scenes", "ap50": ap})
        _log(f"[{self.cfg.name}] val scenes @ {step}: AP@0.5 {ap:.3f}")


def _same_frozen_layers(model: torch.nn.Module, teacher: torch.nn.Module, stride: int) -> bool:
    """Whether ``model``'s layers up to ``stride`` are frozen and hold ``teacher``'s weights."""
    if not hasattr(model.backbone, "blocks_from") or model.frozen != model.backbone.layers_to(stride):
        return False
    mine = [t for m in model.frozen for t in m.state_dict().values()]
    theirs = [t for m in teacher.backbone.layers_to(stride) for t in m.state_dict().values()]
    return len(mine) == len(theirs) and all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(mine, theirs))


def _val_scenes(cfg: TrainConfig) -> list:
    root = cfg.val.get("scenes")
    if not root or not Path(root).is_dir():
        return []
    from facemtl.data.mat3ddfa import read_synth_scenes

    return read_synth_scenes(root)[:int(cfg.val.get("n_val", 100))]

"""One trainer for every facemtl model: mixed sources, masked multi-task loss, exact resume.

Determinism: example ``i`` of data-epoch ``e`` is a pure function of ``(seed, e, i)``
(:class:`facemtl.train.data.MixedDataset`), batch ``b`` of rank ``r`` holds examples
``[(b * world + r) * B, ... + B)``, and the checkpoint stores the model, optimiser, loss
weights and torch's RNG, so ``--resume`` continues with the same next batch and loss.

Multi-process: launched by ``torchrun`` the trainer uses DistributedDataParallel (gloo on CPU,
NCCL on GPU); rank 0 alone logs, validates and writes checkpoints.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from facemtl.data.transforms import Augment
from facemtl.progress import Progress
from facemtl.train.checkpoint import (CHECKPOINT_NAME, initialise, read_checkpoint, restore, save_checkpoint,
                                     torch_predictor)
from facemtl.train.config import DataSpec, TrainConfig
from facemtl.train.data import MixedDataset, SampleSource, Source
from facemtl.train.log import CsvLog, plot_curves


def build_source(spec: DataSpec, cfg: TrainConfig, augment: Augment) -> Source:
    """A training source from its spec (see :class:`facemtl.train.config.DataSpec`)."""
    if spec.type == "fer2013":
        from facemtl.data.fer2013 import load_fer2013_arrays
        from facemtl.train.data import ExpressionArraySource

        images, labels = load_fer2013_arrays(spec.root, spec.options.get("split", "train"))
        return ExpressionArraySource(images, labels, cfg.input_size, cfg.crop_scale, augment)
    if spec.type == "dataset":
        from facemtl.data.registry import load_dataset

        samples = load_dataset(spec.name, spec.root, **spec.options)
        return SampleSource(samples, cfg.input_size, cfg.crop_scale, augment, labels=spec.labels)
    if spec.type == "synth":
        from facemtl.train.data import SynthSource

        return SynthSource(cfg.input_size, cfg.crop_scale, augment, **spec.options)
    raise ValueError(f"unknown data type {spec.type!r} (synth, fer2013, dataset)")


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 1 % of ``cfg.lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def batch_indices(cfg: TrainConfig, step: int, rank: int, world: int) -> list[tuple[int, int]]:
    """``(data-epoch, index)`` keys of the examples of ``step``'s batch on ``rank``."""
    epoch, b = divmod(step, cfg.epoch_steps)
    start = (b * world + rank) * cfg.batch_size
    return [(epoch, i) for i in range(start, start + cfg.batch_size)]


class _Batches(torch.utils.data.Sampler):
    """Yields the example keys of steps ``start .. stop`` (one loader, persistent workers)."""

    def __init__(self, cfg: TrainConfig, start: int, stop: int, rank: int, world: int):
        self.cfg, self.start, self.stop, self.rank, self.world = cfg, start, stop, rank, world

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield batch_indices(self.cfg, step, self.rank, self.world)

    def __len__(self) -> int:
        return self.stop - self.start


def _worker_init(_: int) -> None:
    # Data workers render and warp images; multi-threaded OpenCV inside each of them only fights
    # the trainer for the same cores (torch already runs its workers single-threaded; calling
    # torch.set_num_threads here can deadlock a forked worker).
    import cv2

    cv2.setNumThreads(1)


def validation_sets(cfg: TrainConfig) -> dict[str, list]:
    """Held-out sets named in ``cfg.val``: ``aflw2000`` (a folder), ``fer2013`` (a folder: its
    ``validation`` split), ``synth_n`` (held-out renders), ``datasets`` (a list of
    ``{name, dataset, root, options}``: any reader's folder, e.g. the held-out profiled 300-W faces)."""
    from facemtl.data.registry import load_dataset

    sets: dict[str, list] = {}
    specs = [{"name": n, "dataset": n, "root": cfg.val.get(n), "options": o}
             for n, o in (("aflw2000", {}), ("fer2013", {"split": "validation"}))] + list(cfg.val.get("datasets", []))
    for spec in specs:
        if spec["root"] and Path(spec["root"]).is_dir():
            sets[spec["name"]] = load_dataset(spec["dataset"], spec["root"], **spec.get("options", {}))
    n = int(cfg.val.get("synth_n", 0))
    if n:
        from facemtl.train.data import synth_validation_samples

        options = next((s.options for s in cfg.data if s.type == "synth"), {})
        sets["synth"] = synth_validation_samples(n, seed=cfg.seed + 1_000_003, **options)
    return sets


def _log(message: str) -> None:
    # On a terminal, first clear the progress bar's line (it redraws below at the next step).
    print(("\r\x1b[K" if sys.stderr.isatty() else "") + message, file=sys.stderr, flush=True)


@dataclass
class _Process:
    """Where this process trains: its rank among ``world`` processes, its device, the run folder."""

    rank: int
    world: int
    device: torch.device
    out: Path


def setup_process(cfg: TrainConfig, out_dir: str | Path, device: str | None) -> _Process:
    """Ranks, device and process group (under ``torchrun``), the run folder, threads and seed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if world > 1:
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(dev)
        if not dist.is_initialized():  # a caller may have set up the group itself
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    out = Path(out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # An OpenCV thread pool in this process would be inherited half-alive by the forked data
    # workers and can deadlock them: the main process only crops for validation, 1 thread is plenty.
    import cv2

    cv2.setNumThreads(1)
    torch.manual_seed(cfg.seed)
    return _Process(rank, world, dev, out)


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module, criterion: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW over the model and the learned task weights."""
    # The learned task weights (log-variances) get their own, constant learning rate: they must
    # travel to log(loss) (about 9 for Hopenet's degree-MSE term) within a few hundred steps,
    # not drift there over the whole schedule while one task dominates the shared features.
    return torch.optim.AdamW([
        {"params": list(model.parameters()), "weight_decay": cfg.weight_decay, "role": "model"},
        {"params": list(criterion.parameters()), "weight_decay": 0.0, "lr": cfg.loss_weight_lr,
         "role": "loss_weights"}], lr=cfg.lr)


def init_or_resume(cfg: TrainConfig, model: torch.nn.Module, criterion: torch.nn.Module,
                   optimizer: torch.optim.Optimizer, proc: _Process, resume: bool) -> int:
    """Load the run's own checkpoint (``resume``) or the config's ``init`` weights; returns the step."""
    if cfg.init and not resume:
        init = Path(cfg.init)
        if not init.is_file():
            raise FileNotFoundError(f"{init}: no checkpoint to initialise from (config 'init')")
        initialise(read_checkpoint(init, proc.device), model, criterion)
    if not resume:
        return 0
    path = proc.out / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint to resume from")
    return restore(read_checkpoint(path, proc.device), model, criterion, optimizer)


def make_loader(cfg: TrainConfig, proc: _Process, start: int, end: int) -> torch.utils.data.DataLoader:
    """The mixed training examples of steps ``start .. end`` of this rank, in one loader."""
    augment = Augment(**cfg.augment)
    dataset = MixedDataset([build_source(s, cfg, augment) for s in cfg.data], [s.weight for s in cfg.data],
                           length=cfg.epoch_steps * cfg.batch_size * proc.world, seed=cfg.seed)
    # One loader for the whole run, so the workers (and the renderer's per-process assets) persist.
    return torch.utils.data.DataLoader(dataset, batch_sampler=_Batches(cfg, start, end, proc.rank, proc.world),
                                       num_workers=cfg.workers, worker_init_fn=_worker_init,
                                       persistent_workers=cfg.workers > 0,
                                       # its own generator: seeding the workers must not draw from
                                       # the global RNG (dropout), or a resumed run would diverge
                                       generator=torch.Generator().manual_seed(cfg.seed))


def open_logs(proc: _Process, resume: bool, step: int) -> tuple[CsvLog | None, CsvLog | None]:
    """The training and validation logs (rank 0 only); a fresh run starts them fresh, a resumed
    one drops the rows after its checkpoint."""
    if proc.rank != 0:
        return None, None
    if not resume:
        for name in ("metrics.csv", "val.csv"):
            (proc.out / name).unlink(missing_ok=True)
    log, val_log = CsvLog(proc.out / "metrics.csv"), CsvLog(proc.out / "val.csv")
    if resume:
        log.truncate_after(step)
        val_log.truncate_after(step)
    return log, val_log


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, device: str | None = None,
          stop_at: int | None = None) -> torch.nn.Module:
    """Train ``cfg`` into ``out_dir`` (``last.pt``, ``metrics.csv``, ``val.csv``, ``loss.png``).

    ``stop_at``: checkpoint and return after this many steps (a time-boxed chunk of a longer
    schedule; ``resume`` continues it). Returns this process's trained model (checkpoint:
    ``out_dir/last.pt``).
    """
    from facemtl.losses import MultiTaskLoss
    from facemtl.models import create_model

    proc = setup_process(cfg, out_dir, device)
    model = create_model(cfg.model, **cfg.model_options).to(proc.device)
    criterion = MultiTaskLoss(**cfg.loss_options).to(proc.device)
    optimizer = make_optimizer(cfg, model, criterion)
    step = init_or_resume(cfg, model, criterion, optimizer, proc, resume)
    train_model = model
    if proc.world > 1:
        device_ids = [proc.device.index] if proc.device.type == "cuda" else None
        train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    end = min(cfg.steps, stop_at or cfg.steps)
    loader = make_loader(cfg, proc, step, end)
    val_sets = validation_sets(cfg) if proc.rank == 0 else {}
    log, val_log = open_logs(proc, resume, step)
    loop = _Loop(cfg, proc, model, train_model, criterion, optimizer, val_sets, log, val_log)
    loop.run(loader, step, end)
    return model


class _Loop:
    """The training loop of :func:`train`: steps, logging, validation, checkpoints."""

    def __init__(self, cfg: TrainConfig, proc: _Process, model: torch.nn.Module, train_model: torch.nn.Module,
                 criterion: torch.nn.Module, optimizer: torch.optim.Optimizer, val_sets: dict[str, list],
                 log: CsvLog | None, val_log: CsvLog | None):
        self.cfg, self.proc, self.model, self.train_model = cfg, proc, model, train_model
        self.criterion, self.optimizer, self.val_sets = criterion, optimizer, val_sets
        self.log, self.val_log = log, val_log

    def run(self, loader: torch.utils.data.DataLoader, step: int, end: int) -> None:
        cfg, proc = self.cfg, self.proc
        self.model.train()
        tic, seen = time.perf_counter(), 0
        bar = Progress(max(end - step, 0), f"train {cfg.name}", unit="step", enabled=None if proc.rank == 0 else False)
        for batch in (loader if step < end else []):
            total, parts = self.step(batch, step)
            step += 1
            bar.update(1)
            seen += len(batch["image"]) * proc.world
            if self.log is not None and (step % cfg.log_every == 0 or step == end):
                self.write_log(step, total, parts, seen / (time.perf_counter() - tic))
            epoch_end = step % cfg.epoch_steps == 0 or step == end
            if epoch_end and proc.rank == 0 and self.val_sets:
                self.validate(step)
            if (epoch_end or step % cfg.checkpoint_every == 0) and proc.rank == 0:
                save_checkpoint(proc.out / CHECKPOINT_NAME, self.model, self.criterion, self.optimizer, step, cfg)
            if epoch_end and self.log is not None:
                plot_curves(self.log, proc.out / "loss.png")
        bar.close()

    def step(self, batch: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One optimiser step on ``batch``; returns the total loss and its parts."""
        dev = self.proc.device
        batch = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
        for group in self.optimizer.param_groups:
            if group["role"] == "model":
                group["lr"] = learning_rate(self.cfg, step)
        total, parts = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return total, parts

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The total loss of ``batch`` (on the device) and its parts."""
        dev = self.proc.device
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            outputs = self.train_model(batch["image"])
        return self.criterion({k: v.float() for k, v in outputs.items()}, batch)

    def log_extras(self) -> dict[str, float]:
        """More columns for the step log (a subclass's own statistics); none here."""
        return {}

    def write_log(self, step: int, total: torch.Tensor, parts: dict[str, torch.Tensor], rate: float) -> None:
        cfg = self.cfg
        losses = {k: float(v.detach()) for k, v in parts.items()}
        extras = self.log_extras()
        self.log.write({"step": step, "lr": learning_rate(cfg, step - 1), "loss": float(total.detach()),
                        "images_per_s": rate} | {f"loss_{k}": v for k, v in losses.items()} | extras)
        _log(f"[{cfg.name}] step {step}/{cfg.steps} loss {float(total.detach()):.4f} "
             + " ".join(f"{k} {v:.3f}" for k, v in losses.items())
             + "".join(f" | {k} {v:.2f}" for k, v in extras.items()) + f" | {rate:.0f} img/s")

    def validate(self, step: int) -> None:
        from facemtl.evaluate.protocol import evaluate

        cfg = self.cfg
        self.model.eval()
        for name, samples in self.val_sets.items():
            metrics = evaluate(torch_predictor(self.model, self.proc.device), samples, cfg.input_size, cfg.crop_scale)
            self.val_log.write({"step": step, "set": name} | metrics)
            _log(f"[{cfg.name}] val {name} @ {step}: "
                 + " ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k != "n"))
        self.model.train()

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
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from facemtl.data.transforms import Augment
from facemtl.progress import Progress
from facemtl.train.checkpoint import CsvLog, load_checkpoint, plot_curves, save_atomic
from facemtl.train.config import DataSpec, TrainConfig
from facemtl.train.data import MixedDataset, SampleSource, Source


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


def torch_predictor(model: torch.nn.Module, device: torch.device):
    """A :data:`facemtl.evaluate.protocol.Predict` for a torch model (uint8 BGR crops in)."""

    def predict(crops: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2))).float().to(device)
        with torch.no_grad():
            out = model.decode(model(x))
        return {k: v.float().cpu().numpy() for k, v in out.items()}

    return predict


def validation_sets(cfg: TrainConfig) -> dict[str, list]:
    """Held-out sets named in ``cfg.val``: ``aflw2000`` (a folder), ``fer2013`` (a folder: its
    ``validation`` split), ``synth_n`` (held-out renders)."""
    from facemtl.data.registry import load_dataset

    sets: dict[str, list] = {}
    for name, options in (("aflw2000", {}), ("fer2013", {"split": "validation"})):
        root = cfg.val.get(name)
        if root and Path(root).is_dir():
            sets[name] = load_dataset(name, root, **options)
    n = int(cfg.val.get("synth_n", 0))
    if n:
        from facemtl.train.data import synth_validation_samples

        options = next((s.options for s in cfg.data if s.type == "synth"), {})
        sets["synth"] = synth_validation_samples(n, seed=cfg.seed + 1_000_003, **options)
    return sets


def _log(message: str) -> None:
    # On a terminal, first clear the progress bar's line (it redraws below at the next step).
    print(("\r\x1b[K" if sys.stderr.isatty() else "") + message, file=sys.stderr, flush=True)


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, device: str | None = None,
          stop_at: int | None = None) -> torch.nn.Module:
    """Train ``cfg`` into ``out_dir`` (``last.pt``, ``metrics.csv``, ``val.csv``, ``loss.png``).

    ``stop_at``: checkpoint and return after this many steps (a time-boxed chunk of a longer
    schedule; ``resume`` continues it). Returns this process's trained model (checkpoint:
    ``out_dir/last.pt``).
    """
    from facemtl.evaluate.protocol import evaluate
    from facemtl.losses import MultiTaskLoss
    from facemtl.models import create_model

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
    ckpt_path = out / "last.pt"
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    # An OpenCV thread pool in this process would be inherited half-alive by the forked data
    # workers and can deadlock them: the main process only crops for validation, 1 thread is plenty.
    import cv2

    cv2.setNumThreads(1)
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, **cfg.model_options).to(dev)
    criterion = MultiTaskLoss(**cfg.loss_options).to(dev)
    # The learned task weights (log-variances) get their own, constant learning rate: they must
    # travel to log(loss) (about 9 for Hopenet's degree-MSE term) within a few hundred steps,
    # not drift there over the whole schedule while one task dominates the shared features.
    optimizer = torch.optim.AdamW([
        {"params": list(model.parameters()), "weight_decay": cfg.weight_decay, "role": "model"},
        {"params": list(criterion.parameters()), "weight_decay": 0.0, "lr": cfg.loss_weight_lr,
         "role": "loss_weights"}], lr=cfg.lr)
    step = 0
    if cfg.init and not resume:
        init = Path(cfg.init)
        if not init.is_file():
            raise FileNotFoundError(f"{init}: no checkpoint to initialise from (config 'init')")
        state = load_checkpoint(init, map_location=dev)
        model.load_state_dict(state["model"])
        # Task weights the config still uses keep their learned values; new ones start at 0.
        criterion.load_state_dict(state["criterion"], strict=False)
    if resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"{ckpt_path}: no checkpoint to resume from")
        state = load_checkpoint(ckpt_path, map_location=dev)
        model.load_state_dict(state["model"])
        criterion.load_state_dict(state["criterion"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        step = state["step"]
    train_model = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)

    augment = Augment(**cfg.augment)
    dataset = MixedDataset([build_source(s, cfg, augment) for s in cfg.data], [s.weight for s in cfg.data],
                           length=cfg.epoch_steps * cfg.batch_size * world, seed=cfg.seed)
    val_sets = validation_sets(cfg) if rank == 0 else {}
    if rank == 0 and not resume:  # a fresh run starts fresh logs
        for name in ("metrics.csv", "val.csv"):
            (out / name).unlink(missing_ok=True)
    log = CsvLog(out / "metrics.csv") if rank == 0 else None
    val_log = CsvLog(out / "val.csv") if rank == 0 else None
    if log is not None and resume:
        log.truncate_after(step)
        val_log.truncate_after(step)
    amp = dev.type == "cuda"

    def save() -> None:
        if rank == 0:
            save_atomic({"model": model.state_dict(), "criterion": criterion.state_dict(),
                         "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(), "step": step,
                         "config": cfg.to_dict()}, ckpt_path)

    def validate() -> None:
        model.eval()
        for name, samples in val_sets.items():
            metrics = evaluate(torch_predictor(model, dev), samples, cfg.input_size, cfg.crop_scale)
            val_log.write({"step": step, "set": name} | metrics)
            _log(f"[{cfg.name}] val {name} @ {step}: "
                 + " ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k != "n"))
        model.train()

    end = min(cfg.steps, stop_at or cfg.steps)
    # One loader for the whole run, so the workers (and the renderer's per-process assets) persist.
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=_Batches(cfg, step, end, rank, world),
                                         num_workers=cfg.workers, worker_init_fn=_worker_init,
                                         persistent_workers=cfg.workers > 0,
                                         # its own generator: seeding the workers must not draw from
                                         # the global RNG (dropout), or a resumed run would diverge
                                         generator=torch.Generator().manual_seed(cfg.seed))
    model.train()
    tic, seen = time.perf_counter(), 0
    bar = Progress(max(end - step, 0), f"train {cfg.name}", unit="step", enabled=None if rank == 0 else False)
    for batch in (loader if step < end else []):
        batch = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
        for group in optimizer.param_groups:
            if group["role"] == "model":
                group["lr"] = learning_rate(cfg, step)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            outputs = train_model(batch["image"])
        outputs = {k: v.float() for k, v in outputs.items()}
        total, parts = criterion(outputs, batch)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        step += 1
        bar.update(1)
        seen += len(batch["image"]) * world
        if log is not None and (step % cfg.log_every == 0 or step == end):
            rate = seen / (time.perf_counter() - tic)
            losses = {k: float(v.detach()) for k, v in parts.items()}
            log.write({"step": step, "lr": learning_rate(cfg, step - 1), "loss": float(total.detach()),
                       "images_per_s": rate} | {f"loss_{k}": v for k, v in losses.items()})
            _log(f"[{cfg.name}] step {step}/{cfg.steps} loss {float(total.detach()):.4f} "
                 + " ".join(f"{k} {v:.3f}" for k, v in losses.items()) + f" | {rate:.0f} img/s")
        epoch_end = step % cfg.epoch_steps == 0 or step == end
        if epoch_end and rank == 0 and val_sets:
            validate()
        if epoch_end or step % cfg.checkpoint_every == 0:
            save()
        if epoch_end and log is not None:
            plot_curves(log, out / "loss.png")
    bar.close()
    return model


def load_trained(path: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, TrainConfig]:
    """The model and config stored in a checkpoint written by :func:`train`."""
    from facemtl.models import create_model

    state = load_checkpoint(path, map_location=device)
    cfg = TrainConfig.from_dict(state["config"])
    model = create_model(cfg.model, **cfg.model_options)
    model.load_state_dict(state["model"])
    return model.eval(), cfg

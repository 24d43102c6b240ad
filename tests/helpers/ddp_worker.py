"""Run by tests/test_trainer.py under torchrun: train a few steps, then compare the replicas."""

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_trainer import tiny_config  # noqa: E402

from facemtl.train.trainer import train  # noqa: E402

out = Path(sys.argv[1])
dist.init_process_group("gloo")
cfg = tiny_config(Path(os.environ["FACEMTL_SHARED"]), batch_size=2)
torch.manual_seed(cfg.seed)
if dist.get_rank() == 0:  # the initial weights, to check training changed them
    from facemtl.models import create_model

    init = [p.detach() for p in create_model(cfg.model, **cfg.model_options).parameters()]
    (out / "run").mkdir(parents=True, exist_ok=True)
    torch.save(init, out / "run" / "init.pt")
dist.barrier()
model = train(cfg, out / "run", device="cpu")
# each rank's own parameters after training; DDP must have kept them identical (BatchNorm running
# statistics are per-rank buffers by design: rank 0's are the ones checkpointed)
flat = torch.cat([p.detach().flatten() for p in model.parameters()])
gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
dist.all_gather(gathered, flat)
if dist.get_rank() == 0:
    agree = all(torch.equal(g, gathered[0]) for g in gathered)
    moved = not torch.equal(flat, torch.cat([p.flatten() for p in torch.load(out / "run" / "init.pt")]))
    (out / "replicas_agree").write_text("yes" if agree and moved else f"agree={agree} moved={moved}")
dist.barrier()  # both ranks are past every collective
dist.destroy_process_group()
# Skip interpreter teardown: on a loaded machine gloo's threads sometimes abort it ("terminate
# called without an active exception") after everything above has finished.
os._exit(0)

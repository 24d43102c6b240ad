"""The trainer on real labelled faces (dlib's 68-point XML sample): exact resume and DDP replicas."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facemtl.train.checkpoint import load_trained
from facemtl.train.config import DataSpec, TrainConfig
from facemtl.train.log import CsvLog
from facemtl.train.trainer import batch_indices, learning_rate, train

REPO = Path(__file__).resolve().parents[1]


def tiny_config(shared: Path, **kw) -> TrainConfig:
    root = shared / "data" / "format-samples" / "dlib-faces" / "training_with_face_landmarks.xml"
    base = dict(name="tiny", model="mtl_mobilenetv3_small", model_options={"width": 0.25, "decoder_dim": 16},
                input_size=64, crop_scale=1.5, steps=4, epoch_steps=2, batch_size=4, warmup_steps=1,
                checkpoint_every=2, workers=0, log_every=1, augment={"low_res": 0.5},
                data=[DataSpec(type="dataset", name="dlib-xml", root=str(root))])
    return TrainConfig(**(base | kw))


def test_schedule_and_batches():
    cfg = TrainConfig(name="x", model="m", steps=100, warmup_steps=10, lr=1.0, epoch_steps=10, batch_size=4)
    assert learning_rate(cfg, 0) == pytest.approx(0.1) and learning_rate(cfg, 9) == pytest.approx(1.0)
    assert learning_rate(cfg, 99) < 0.05
    # step 13 = step 3 of data-epoch 1; rank 1 of 2 takes the second quarter-batch slot
    assert batch_indices(cfg, 13, rank=1, world=2) == [(1, 28), (1, 29), (1, 30), (1, 31)]


def test_csv_log_widens_for_new_metrics(tmp_path):
    log = CsvLog(tmp_path / "val.csv")
    log.write({"step": 1, "set": "aflw2000", "mae_mean": 7.5})
    log.write({"step": 1, "set": "fer2013", "expression_accuracy": 0.4})
    log.write({"step": 2, "set": "aflw2000", "mae_mean": 7.0})
    rows = CsvLog(tmp_path / "val.csv").read()
    assert [r["expression_accuracy"] for r in rows] == ["", "0.4", ""]
    assert [r["mae_mean"] for r in rows] == ["7.5", "", "7.0"]
    log.truncate_after(1)
    assert len(CsvLog(tmp_path / "val.csv").read()) == 2


def test_resume_continues_exactly(shared, tmp_path):
    # FER2013 batches train the expression head, whose dropout draws from torch's RNG.
    fer = DataSpec(type="fer2013", root=str(shared / "data" / "expression" / "fer2013"), options={"split": "test"})
    cfg = tiny_config(shared)
    cfg.data.append(fer)
    train(cfg, tmp_path / "a", device="cpu")
    train(cfg, tmp_path / "b", device="cpu", stop_at=2)
    train(cfg, tmp_path / "b", resume=True, device="cpu")
    straight, resumed = tmp_path / "a" / "last.pt", tmp_path / "b" / "last.pt"
    a, b = torch.load(straight, weights_only=False), torch.load(resumed, weights_only=False)
    assert a["step"] == b["step"] == 4
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)
    rows_a = (tmp_path / "a" / "metrics.csv").read_text().splitlines()
    rows_b = (tmp_path / "b" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[:3] for r in rows_a] == [r.split(",")[:3] for r in rows_b]  # step, lr, loss
    assert (tmp_path / "a" / "loss.png").stat().st_size > 0
    model, loaded_cfg = load_trained(straight)
    assert loaded_cfg == cfg and not model.training


def test_init_starts_from_a_checkpoint_with_its_own_schedule(shared, tmp_path):
    cfg = tiny_config(shared, steps=2, loss_options={"weighting": "uncertainty"})
    train(cfg, tmp_path / "pre", device="cpu")
    pre = torch.load(tmp_path / "pre" / "last.pt", weights_only=False)
    # lr 0: the fine-tune's model can only be the initial checkpoint's.
    ft = tiny_config(shared, steps=1, lr=0.0, loss_weight_lr=0.0, init=str(tmp_path / "pre" / "last.pt"),
                     loss_options={"weighting": "uncertainty"})
    train(ft, tmp_path / "ft", device="cpu")
    after = torch.load(tmp_path / "ft" / "last.pt", weights_only=False)
    assert after["step"] == 1
    for k, v in pre["model"].items():
        if v.is_floating_point() and "running" not in k:  # batch-norm statistics move in train mode
            torch.testing.assert_close(after["model"][k], v, rtol=0, atol=0)
    torch.testing.assert_close(after["criterion"], pre["criterion"], rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        train(tiny_config(shared, init=str(tmp_path / "nothing.pt")), tmp_path / "x", device="cpu")


def test_ddp_replicas_agree(shared, tmp_path):
    env = dict(os.environ, FACEMTL_SHARED=str(shared), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           str(REPO / "tests" / "helpers" / "ddp_worker.py"), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "replicas_agree").read_text() == "yes"
    assert (tmp_path / "run" / "last.pt").is_file()

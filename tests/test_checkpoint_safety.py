"""Untrusted checkpoints (issue 13.11): a .pt that carries code is refused with an error naming the
file, and never runs; the trainer's own checkpoints load with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from facemtl.cli import main  # noqa: E402
from facemtl.io import FileError  # noqa: E402
from facemtl.train.checkpoint import read_checkpoint  # noqa: E402
from facemtl.train.config import TrainConfig  # noqa: E402


class Payload:
    """Unpickling this calls ``open(marker, "w")``: a stand-in for any code a file may carry."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def evil(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "downloaded.pt"
    torch.save({"model": {}, "config": {"name": "x", "model": "x"}, "extra": Payload(marker)}, path)
    return path, marker


def test_pickled_callable_is_refused_and_not_run(tmp_path):
    path, marker = evil(tmp_path)
    with pytest.raises(FileError, match=rf"{path.name}: refused"):
        read_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("argv", [["eval", "--dataset", "aflw2000", "--root", "R", "--model", "P"],
                                  ["export", "--checkpoint", "P", "--onnx", "out.onnx"]])
def test_commands_refuse_it(tmp_path, capsys, argv, monkeypatch):
    path, marker = evil(tmp_path)
    (tmp_path / "R").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main([str(path) if a == "P" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert f"{path}: refused" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "out.onnx").exists()


def test_the_trainers_checkpoint_round_trips(tmp_path):
    """What :func:`facemtl.train.trainer.train` saves: state dicts, AdamW with role groups, the
    torch RNG, the step and the config as a dict."""
    from facemtl.models import create_model

    cfg = TrainConfig.from_dict({"name": "t", "model": "mtl_mobilenetv3_small", "model_options": {"width": 0.5},
                                 "augment": {"low_res_range": [1.0, 8.0]}, "prepare": {"a": "b"}})
    from facemtl.losses import MultiTaskLoss
    from facemtl.train.checkpoint import save_checkpoint

    model = create_model(cfg.model, **cfg.model_options)
    opt = torch.optim.AdamW([{"params": list(model.parameters()), "role": "model"}], lr=1e-3)
    save_checkpoint(tmp_path / "last.pt", model, MultiTaskLoss(weighting="uncertainty"), opt, 7, cfg)
    back = read_checkpoint(tmp_path / "last.pt")
    assert back["step"] == 7 and TrainConfig.from_dict(back["config"]) == cfg
    assert torch.equal(back["rng"], torch.get_rng_state())
    assert back["optimizer"]["param_groups"][0]["role"] == "model"


def test_corrupt_and_foreign_files(tmp_path):
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(FileError, match=r"cut\.pt: not a readable checkpoint"):
        read_checkpoint(tmp_path / "cut.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(FileError, match=r"other\.pt: not a facemtl checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileError, match=r"none\.pt: checkpoint not found"):
        read_checkpoint(tmp_path / "none.pt")


def test_a_weights_only_half_precision_file_initialises_a_run():
    """``init:`` from a weights-only checkpoint stored in float16 (as ``checkpoints/`` keeps them)."""
    from facemtl.losses import MultiTaskLoss
    from facemtl.models import create_model
    from facemtl.train.checkpoint import initialise

    cfg = TrainConfig.from_dict({"name": "t", "model": "mtl_mobilenetv3_small", "model_options": {"width": 0.5}})
    source = create_model(cfg.model, **cfg.model_options)
    state = {"model": {k: (v.half() if v.is_floating_point() else v) for k, v in source.state_dict().items()},
             "step": 3, "config": cfg.to_dict()}
    target = create_model(cfg.model, **cfg.model_options)
    initialise(state, target, MultiTaskLoss(weighting="uncertainty"))
    w_source, w_target = source.state_dict(), target.state_dict()
    k = next(k for k, v in w_source.items() if v.is_floating_point() and v.numel() > 10)
    assert w_target[k].dtype == torch.float32
    assert torch.allclose(w_target[k], w_source[k].half().float())

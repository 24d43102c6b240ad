"""Averaging the weights of fine-tunes of one model (``facemtl.tools.average_weights``)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from facemtl.models import create_model  # noqa: E402
from facemtl.tools.average_weights import main  # noqa: E402
from facemtl.train.checkpoint import load_trained, save_weights  # noqa: E402
from facemtl.train.config import TrainConfig  # noqa: E402


def tiny(tmp_path, name: str, seed: int, width: float = 0.25):
    cfg = TrainConfig(name="tiny", model="mtl_mobilenetv3_small", model_options={"width": width}, input_size=64)
    torch.manual_seed(seed)
    model = create_model(cfg.model, **cfg.model_options)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.num_batches_tracked.fill_(seed)
    save_weights(tmp_path / name, model, seed, cfg)
    return model.state_dict()


def test_mean_of_two_models_loads_as_the_model(tmp_path):
    a, b = tiny(tmp_path, "a.pt", 1), tiny(tmp_path, "b.pt", 2)
    assert main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out", str(tmp_path / "soup.pt")]) == 0
    soup, cfg = load_trained(tmp_path / "soup.pt")
    state = soup.state_dict()
    assert cfg.name == "tiny"
    # The two models differ in most tensors, so their mean is neither of them.
    floats = [k for k, v in state.items() if v.is_floating_point()]
    assert sum(not torch.equal(a[k], b[k]) for k in floats) > len(floats) / 2
    for k, v in state.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, (a[k] + b[k]) / 2)
        else:
            assert torch.equal(v, b[k])  # counters: the last checkpoint's


def test_different_models_are_refused_by_name(tmp_path, capsys):
    tiny(tmp_path, "a.pt", 1)
    tiny(tmp_path, "wide.pt", 2, width=0.5)
    assert main([str(tmp_path / "wide.pt"), str(tmp_path / "a.pt"), "--out", str(tmp_path / "soup.pt")]) == 1
    assert "wide.pt" in capsys.readouterr().err
    assert not (tmp_path / "soup.pt").exists()

"""Every shipped training config loads, names real data sources, and trains a step as written
(model, model options and loss options together) on its own synthetic source, made small."""

import math
import re
from dataclasses import replace
from pathlib import Path

import pytest

from facemtl.data.registry import DATASETS
from facemtl.train.config import CONFIG_DIR, DataSpec, TrainConfig
from facemtl.train.detection.trainer import is_detector
from facemtl.train.data import SampleSource
from facemtl.train.log import CsvLog
from facemtl.train.superres import read_config

# Super-resolution configs (task: superres) have their own schema: tests/test_superres.py; the face
# detector's configs (is_detector) have their own sources and loop: tests/test_mos.py checks them.
TASK_CONFIGS = sorted(p for p in CONFIG_DIR.glob("*.yaml") if read_config(p) is None)
CONFIGS = [p for p in TASK_CONFIGS if not is_detector(TrainConfig.load(p))]
NAMED_MODELS = {"hopenet", "sixdrepnet", "mnn", "default"}


def test_every_named_model_has_a_config():
    assert NAMED_MODELS <= {p.stem for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_names_known_sources(path):
    cfg = TrainConfig.load(path)
    assert cfg.name == path.stem and cfg.data
    for spec in cfg.data:
        assert spec.type in {"synth", "fer2013", "dataset"}, spec
        if spec.type == "dataset":
            assert spec.name in DATASETS, spec
        assert set(spec.labels or ()) <= set(SampleSource.LABELS), spec


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_trains_a_step(path, shared, tmp_path):
    from facemtl.train.trainer import train

    cfg = TrainConfig.load(path)
    if cfg.model.startswith("expression"):
        pytest.skip("the expression loop (facemtl.train.expression): tests/test_expression.py trains this config")
    # Configs on real data only (the default: profiled 300-W photos) train the step on renders instead.
    synth = next((spec for spec in cfg.data if spec.type == "synth"), DataSpec(type="synth"))
    options = synth.options | {"render_size": 80, "shared": str(shared), "textures": str(shared / "data" / "lfw")}
    tiny = replace(cfg, init=None, steps=1, epoch_steps=1, batch_size=2, input_size=64, warmup_steps=1,
                   checkpoint_every=1, workers=0, threads=1, log_every=1, val={},
                   data=[replace(synth, options=options)])
    train(tiny, tmp_path, device="cpu")
    rows = CsvLog(tmp_path / "metrics.csv").read()
    # Every task the model has got a label and a finite, non-zero loss.
    losses = {k: float(v) for k, v in rows[0].items() if k.startswith("loss_")}
    assert len(rows) == 1 and losses and (tmp_path / "last.pt").is_file()
    assert all(math.isfinite(v) and v > 0 for v in losses.values()), losses


def _made_from_a_clone(path: str, prepare: dict[str, str]) -> bool:
    """Whether a fresh clone has ``path`` or can make it by ``prepare``'s commands: a shipped config's
    training run, or the mean of weights (``facemtl.tools.average_weights``) that are so made."""
    if (Path(__file__).resolve().parents[1] / path).is_file():
        return True
    command = prepare.get(path, "")
    trained = re.match(r"facemtl train --config (\w+)", command)
    if trained:
        return trained[1] in {p.stem for p in CONFIGS}
    mean = re.match(r"python -m facemtl.tools.average_weights (.+) --out \S+$", command)
    return bool(mean) and all(_made_from_a_clone(p, prepare) for p in mean[1].split())


@pytest.mark.parametrize("path", [p for p in CONFIGS if "\ninit:" in p.read_text()], ids=lambda p: p.stem)
def test_config_init_weights_are_committed_and_fit_the_model(path):
    """A shipped config that fine-tunes starts from weights in the repository (not a run folder a
    fresh clone lacks), and they load into the config's model as written. The 50 MB for weights
    hold the latest stages' only: an earlier stage's init may be missing when the config's
    ``prepare:`` names the shipped config that makes it (``facemtl train`` prints that command)."""
    from facemtl.losses import MultiTaskLoss
    from facemtl.models import create_model
    from facemtl.train.checkpoint import initialise, read_checkpoint

    cfg = TrainConfig.load(path)
    weights = Path(__file__).resolve().parents[1] / cfg.init
    if not weights.is_file():
        assert cfg.name != "default", "the shipped default's init must be committed"
        assert _made_from_a_clone(cfg.init, cfg.prepare), f"{cfg.init}: not committed, no prepare command"
        return
    model = create_model(cfg.model, **(cfg.model_options | {"pretrained": False}))
    initialise(read_checkpoint(weights), model, MultiTaskLoss(**cfg.loss_options))


def test_base_config_is_inherited_key_by_key_and_overridden_whole(tmp_path):
    (tmp_path / "parent.yaml").write_text(
        "model: mtl_mobilenetv3_small\nmodel_options: {width: 0.5}\nsteps: 7\nlr: 0.01\n"
        "data:\n  - {type: synth}\n")
    (tmp_path / "child.yaml").write_text("base: parent\nmodel_options: {}\nsteps: 9\n")
    cfg = TrainConfig.load(tmp_path / "child.yaml")
    assert (cfg.name, cfg.model, cfg.steps, cfg.lr) == ("child", "mtl_mobilenetv3_small", 9, 0.01)
    assert cfg.model_options == {} and [d.type for d in cfg.data] == ["synth"]
    # A shipped config built on another: the same model and validation, its own schedule.
    stage2, stage1 = TrainConfig.load("default_stage2"), TrainConfig.load("default_stage1")
    assert (stage2.model, stage2.val, stage2.input_size) == (stage1.model, stage1.val, stage1.input_size)
    assert stage2.init and not stage1.init and stage2.steps != stage1.steps


def test_base_config_errors_name_the_file(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b\n")
    (tmp_path / "b.yaml").write_text("base: a\n")
    with pytest.raises(ValueError, match=r"a\.yaml: circular base"):
        TrainConfig.load(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: missing_one\nsteps: 3\n")
    with pytest.raises(ValueError, match="missing_one: cannot read config"):
        TrainConfig.load(tmp_path / "c.yaml")

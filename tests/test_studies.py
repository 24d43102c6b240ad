"""``facemtl study alpha | low-res | compare`` end to end at a tiny scale, and their shared harness.

The studies train on small synthetic faces (64 px renders, 2 steps of 4 crops) and score on the
held-out synthetic faces and the real ``aflw2000-dev``; the harness parts are checked on their own.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from facemtl.cli import main
from facemtl.tools import studies
from facemtl.tools.study_compare import VARIANTS as COMPARE_VARIANTS
from facemtl.tools.study_low_res import pixelate
from facemtl.train.config import TrainConfig

PNG = b"\x89PNG\r\n\x1a\n"
SYNTH_N = 6


def tiny_config(tmp_path: Path, shared: Path, **kw) -> Path:
    d = dict(model="mtl_mobilenetv3_small", model_options={"width": 0.25, "decoder_dim": 16}, input_size=64,
             steps=2, epoch_steps=2, batch_size=4, warmup_steps=1, checkpoint_every=2, workers=0, threads=1,
             log_every=1, loss_options={"weighting": "uncertainty"}, augment={"low_res": 0.5},
             data=[{"type": "synth", "options": {"render_size": 64, "shared": str(shared)}}],
             val={"synth_n": SYNTH_N, "aflw2000": str(shared / "data" / "aflw2000-dev")})
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(d | kw))
    return path


def run_study(tmp_path: Path, study: str, config: Path, *extra: str) -> tuple[dict, str]:
    argv = ["study", study, "--config", str(config), "--runs-dir", str(tmp_path / "runs"),
            "--out-dir", str(tmp_path / "docs" / "studies"), "--doc", str(tmp_path / "docs" / "studies.md"),
            "--json", str(tmp_path / f"{study}.json"), *extra]
    assert main(argv) == 0
    return json.loads((tmp_path / f"{study}.json").read_text()), (tmp_path / "docs" / "studies.md").read_text()


def n_within_99(aflw2000_dev: Path) -> int:
    from facemtl.data.mat3ddfa import read_aflw2000

    return sum(bool((np.abs(s.pose) <= 99).all()) for s in read_aflw2000(aflw2000_dev))


def check_pose(metrics: dict, n: int, pose_n: int) -> None:
    assert metrics["n"] == n and metrics["pose_n"] == pose_n
    for k in ("yaw", "pitch", "roll"):
        assert 0 <= metrics[f"mae_{k}"] < 180 and abs(metrics[f"bias_{k}"]) <= metrics[f"mae_{k}"] + 1e-9
    assert metrics["mae_mean"] == pytest.approx(np.mean([metrics[f"mae_{k}"] for k in ("yaw", "pitch", "roll")]))


def check_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG, path


# ---- harness --------------------------------------------------------------------------------------


def test_variant_config_merges_overrides():
    base = TrainConfig(name="base", model="hopenet", model_options={"backbone": "resnet18", "head": "bins"},
                       loss_options={"weighting": "fixed", "alpha": 2.0}, steps=1000, warmup_steps=200,
                       val={"synth_n": 5})
    cfg = studies.variant_config(base, "alpha_0", {"loss_options": {"alpha": 0.0}}, steps=30)
    assert cfg.name == "alpha_0" and cfg.loss_options == {"weighting": "fixed", "alpha": 0.0}
    assert cfg.model_options == base.model_options and cfg.val == {}
    assert (cfg.steps, cfg.warmup_steps) == (30, 3)  # the warm-up is cut to fit the short schedule
    assert studies.variant_config(base, "x", {}).steps == 1000
    other = studies.variant_config(base, "mnn", {"model": "mnn", "model_options": {"expression": True}})
    assert other.model == "mnn" and other.model_options == {"expression": True}  # hopenet's options dropped
    same = studies.variant_config(base, "r", {"model": "hopenet", "model_options": {"head": "regression"}})
    assert same.model_options == {"backbone": "resnet18", "head": "regression"}
    with pytest.raises(ValueError, match="unknown config key"):
        studies.variant_config(base, "bad", {"learning_rate": 1})


def test_select_variants():
    variants = {"a": {}, "b": {"x": 1}, "c": {}}
    assert studies.select_variants(variants, None) == list(variants.items())
    assert [n for n, _ in studies.select_variants(variants, "c, a")] == ["a", "c"]  # the study's order
    with pytest.raises(ValueError, match="unknown variants"):
        studies.select_variants(variants, "a,d")


def test_update_section_replaces_only_its_own(tmp_path):
    doc = tmp_path / "studies.md"
    doc.write_text("# Studies\n\nHow to run them.\n")
    studies.update_section(doc, "alpha", "alpha v1")
    studies.update_section(doc, "compare", "compare v1")
    studies.update_section(doc, "alpha", "alpha v2\n")
    text = doc.read_text()
    assert text.startswith("# Studies\n\nHow to run them.\n")
    assert "alpha v1" not in text and text.count("alpha v2") == 1 and "compare v1" in text
    assert text.index("alpha v2") < text.index("compare v1")  # replaced in place
    studies.update_section(tmp_path / "new" / "s.md", "low-res", "x")
    assert (tmp_path / "new" / "s.md").read_text().startswith("# facemtl studies\n")


def test_pixelate_is_nearest_blocks():
    image = np.arange(10 * 10 * 3, dtype=np.uint8).reshape(10, 10, 3)
    assert np.array_equal(pixelate(image, 1), image)
    out = pixelate(image, 5)
    # 10 -> 2 px keeps rows/columns 0 and 5; back to 10 px repeats each 5 times.
    expected = image[[0, 5]][:, [0, 5]].repeat(5, axis=0).repeat(5, axis=1)
    assert out.shape == image.shape and np.array_equal(out, expected)


def test_pnp_score_on_exact_projections():
    from facemtl.data.sample import Sample
    from facemtl.geometry.pnp import camera_matrix, mean_face, project_points
    from facemtl.geometry.rotations import euler_to_matrix
    from facemtl.tools.study_low_res import pnp_score

    poses = np.array([[30.0, -10.0, 5.0], [-60.0, 20.0, -15.0], [0.0, 0.0, 0.0]])
    K = camera_matrix(400, 300)  # the camera the score assumes: focal = image width
    landmarks = project_points(mean_face(), euler_to_matrix(poses), np.array([[0.0, 0.0, 600.0]] * 3), K)
    landmarks[2] = 150.0  # every point at one pixel: no pose
    image = np.zeros((300, 400, 3), np.uint8)
    samples = [Sample("t", image=image, pose=p) for p in poses]
    r = pnp_score(landmarks, samples)
    assert r["n_failed"] == 1 and r["pose_n"] == 2
    assert r["mae_mean"] < 1e-3 and abs(r["bias_yaw"]) < 1e-3
    none = pnp_score(np.full((3, 68, 2), 150.0), samples)
    assert none["n_failed"] == 3 and none["pose_n"] == 0 and math.isnan(none["mae_mean"])


def test_compare_covers_every_architecture():
    from facemtl.models import list_models

    # Every pose architecture: not the expression-only network, the face detectors (mos_*) or the
    # super-resolution networks (sr_*).
    assert {v["model"] for v in COMPARE_VARIANTS.values()} == {m for m in list_models()
                                                                if not m.startswith(("expression", "mos_", "sr_"))}


def test_train_variant_reuses_and_resumes(shared, tmp_path, monkeypatch):
    from facemtl.train import trainer

    # No dropout: the trainer's resume is bit-exact then, so resumed and straight weights must match.
    base = TrainConfig.load(tiny_config(tmp_path, shared, input_size=32, val={},
                                        model_options={"width": 0.25, "decoder_dim": 16, "dropout": 0.0}))
    cfg = studies.variant_config(base, "v", {})
    calls = []
    real_train = trainer.train
    monkeypatch.setattr(trainer, "train", lambda *a, **k: calls.append(k["resume"]) or real_train(*a, **k))
    ckpt = tmp_path / "runs" / "v" / "last.pt"
    model = studies.train_variant(cfg, tmp_path / "runs", device="cpu")
    mtime = ckpt.stat().st_mtime_ns
    # Finished with the same config (other data workers only): reused, not retrained.
    again = studies.train_variant(TrainConfig.from_dict(cfg.to_dict() | {"workers": 1}), tmp_path / "runs", "cpu")
    assert ckpt.stat().st_mtime_ns == mtime and not again.training
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    # Interrupted after one step: resumed to the end, the same weights as the straight run.
    real_train(cfg, tmp_path / "cut" / "v", device="cpu", stop_at=1)
    resumed = studies.train_variant(cfg, tmp_path / "cut", device="cpu")
    assert torch.load(tmp_path / "cut" / "v" / "last.pt", weights_only=False)["step"] == cfg.steps
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    # Another config: trained afresh.
    studies.train_variant(studies.variant_config(base, "v", {}, steps=3), tmp_path / "runs", "cpu")
    assert torch.load(ckpt, weights_only=False)["step"] == 3
    assert calls == [False, True, False]


# ---- the studies, end to end ----------------------------------------------------------------------


def test_study_alpha(shared, aflw2000_dev, tmp_path):
    config = tiny_config(tmp_path, shared, model="hopenet", model_options={"backbone": "resnet18", "head": "bins"},
                         input_size=32, loss_options={"weighting": "fixed"})
    r, doc = run_study(tmp_path, "alpha", config, "--variants", "regression,alpha_0,alpha_2")
    rows = r["variants"]
    assert [v["name"] for v in rows] == ["alpha_0", "alpha_2", "regression"]
    assert [(v["head"], v["alpha"]) for v in rows] == [("bins", 0.0), ("bins", 2.0), ("regression", None)]
    n_aflw = n_within_99(aflw2000_dev)
    for v in rows:
        check_pose(v["metrics"]["aflw2000"], 32, n_aflw)
        check_pose(v["metrics"]["synth"], SYNTH_N, SYNTH_N)
        state = torch.load(Path(v["run"]) / "last.pt", weights_only=False)
        assert state["step"] == 2 and state["config"]["model_options"]["head"] == v["head"]
        if v["alpha"] is not None:
            assert state["config"]["loss_options"]["alpha"] == v["alpha"]
    regression = torch.load(Path(rows[2]["run"]) / "last.pt", weights_only=False)["model"]
    assert regression["head.weight"].shape == (3, 512)  # three angles straight from the ResNet-18 feature
    check_png(tmp_path / "docs" / "studies" / "alpha_mae.png")
    assert doc.count("<!-- study alpha: begin -->") == 1 and "](studies/alpha_mae.png)" in doc
    for label in ("| α = 0 |", "| α = 2 |", "| regression (MSE) |"):
        assert doc.count(label) == 2  # one row in each set's table


def test_study_low_res(shared, aflw2000_dev, tmp_path):
    from facemtl.data.mat3ddfa import read_aflw2000
    from facemtl.evaluate.protocol import evaluate, predict_samples
    from facemtl.geometry.pnp import landmarks_to_pose
    from facemtl.metrics import pose_mae
    from facemtl.train.checkpoint import load_trained, torch_predictor

    r, doc = run_study(tmp_path, "low-res", tiny_config(tmp_path, shared))
    assert r["factors"] == [1, 5, 10, 15]
    assert [m["name"] for m in r["models"]] == ["low_res_aug", "no_low_res_aug"]
    assert [m["augment"]["low_res"] for m in r["models"]] == [0.5, 0.0]
    methods = ("network", "landmarks + PnP")
    keys = [(row["model"], row["set"], row["factor"], row["method"]) for row in r["rows"]]
    assert sorted(keys) == sorted((m, s, f, k) for m in ("low_res_aug", "no_low_res_aug")
                                  for s in ("aflw2000", "synth") for f in (1, 5, 10, 15) for k in methods)
    n_aflw = n_within_99(aflw2000_dev)
    for row in r["rows"]:
        n = 32 if row["set"] == "aflw2000" else SYNTH_N
        if row["method"] == "network":
            check_pose(row, n, n_aflw if row["set"] == "aflw2000" else SYNTH_N)
        else:
            assert 0 <= row["n_failed"] <= n and 0 <= row["mae_mean"] < 180
    for info in r["eval_sets"].values():
        assert math.isfinite(info["ground_truth_pnp"]["mae_mean"]) and info["face_px"] > 10
    # x1 is the plain protocol evaluation of the checkpoint, and PnP there is landmarks_to_pose of its landmarks.
    samples = read_aflw2000(aflw2000_dev)
    for name in ("low_res_aug", "no_low_res_aug"):
        model, cfg = load_trained(tmp_path / "runs" / name / "last.pt")
        predict = torch_predictor(model, torch.device("cpu"))
        plain = evaluate(predict, samples, cfg.input_size, cfg.crop_scale)
        row = next(x for x in r["rows"] if (x["model"], x["set"], x["factor"], x["method"])
                   == (name, "aflw2000", 1, "network"))
        assert {k: row[k] for k in plain} == pytest.approx(plain, rel=1e-9, abs=1e-9)
        landmarks = predict_samples(predict, samples, cfg.input_size, cfg.crop_scale)["landmarks"]
        pnp = landmarks_to_pose(landmarks, (450, 450), errors="nan")
        ok = np.isfinite(pnp).all(axis=1)
        pnp_row = next(x for x in r["rows"] if (x["model"], x["set"], x["factor"], x["method"])
                       == (name, "aflw2000", 1, "landmarks + PnP"))
        assert pnp_row["n_failed"] == int((~ok).sum())
        assert pnp_row["mae_mean"] == pytest.approx(pose_mae(pnp[ok], np.stack([s.pose for s in samples])[ok])["mean"])
    check_png(tmp_path / "docs" / "studies" / "low_res_mae.png")
    assert "| low_res_aug | network |" in doc and "| no_low_res_aug | landmarks + PnP |" in doc

    # The same checkpoints given by path: nothing trained, the same numbers.
    ckpts = [str(tmp_path / "runs" / n / "last.pt") for n in ("low_res_aug", "no_low_res_aug")]
    mtimes = [Path(c).stat().st_mtime_ns for c in ckpts]
    r2, doc2 = run_study(tmp_path, "low-res", tiny_config(tmp_path, shared), "--checkpoints", *ckpts,
                      "--factors", "1,10")
    assert [Path(c).stat().st_mtime_ns for c in ckpts] == mtimes
    assert "Models: the checkpoints given" in doc2 and "Training (every variant alike)" not in doc2
    assert [m["name"] for m in r2["models"]] == ["low_res_aug", "no_low_res_aug"]
    before = {(x["model"], x["set"], x["factor"], x["method"]): x["mae_mean"] for x in r["rows"]}
    for x in r2["rows"]:
        assert x["factor"] in (1, 10)
        assert x["mae_mean"] == pytest.approx(before[(x["model"], x["set"], x["factor"], x["method"])], abs=1e-9)


def test_study_compare(shared, aflw2000_dev, tmp_path):
    from facemtl.models import create_model

    config = tiny_config(tmp_path, shared, model_options={})
    names = ["hopenet_resnet18", "mnn", "mtl_mobilenetv3_small"]
    r, doc = run_study(tmp_path, "compare", config, "--variants", ",".join(names), "--latency-repeats", "3")
    rows = r["variants"]
    assert [v["name"] for v in rows] == names
    n_aflw = n_within_99(aflw2000_dev)
    for v in rows:
        spec = COMPARE_VARIANTS[v["name"]]
        assert (v["model"], v["model_options"]) == (spec["model"], spec["model_options"])
        assert v["params"] == sum(p.numel() for p in create_model(spec["model"], **spec["model_options"]).parameters())
        lat = v["latency_ms"]
        assert 0 < lat["min"] <= lat["median"] and lat["threads"] == 1
        assert v["train_images_per_s"] > 0
        aflw, synth = v["metrics"]["aflw2000"], v["metrics"]["synth"]
        check_pose(aflw, 32, n_aflw)
        check_pose(synth, SYNTH_N, SYNTH_N)
        has_landmarks = v["name"] != "hopenet_resnet18"
        for m in (aflw, synth):
            assert ("nme_inter_ocular" in m) == has_landmarks
            if has_landmarks:
                assert 0 < m["nme_inter_ocular"] < 10 and 0 < m["nme_bbox"] < 10
        # Only the synthetic faces carry visibility and expression labels.
        assert "expression_accuracy" not in aflw and "occlusion_recall_at_p80" not in aflw
        assert ("expression_accuracy" in synth) == has_landmarks  # MNN and the product net have the head
        if has_landmarks:
            assert synth["expression_accuracy"] in [k / SYNTH_N for k in range(SYNTH_N + 1)]
            assert 0 <= synth["occlusion_recall_at_p80"] <= 1
    for name in ("mae", "speed"):
        check_png(tmp_path / "docs" / "studies" / f"compare_{name}.png")
    assert "### Cost" in doc and all(f"| {n} |" in doc for n in names)

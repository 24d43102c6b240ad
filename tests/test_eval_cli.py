"""``facemtl eval`` on the real aflw2000-dev images with a tiny random multi-task model.

The model is exported to ONNX and also saved as a training checkpoint, so the ONNX path
(onnxruntime), the checkpoint path (torch) and :func:`facemtl.evaluate.protocol.evaluate` called
directly on the torch model must all give the same numbers. The checkpoint path runs in a
subprocess: it imports the trainer, hence ``torch.distributed``, after which torch's float32
convolutions round differently in this process (enough to trip test_export's tolerances).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from facemtl.cli import main
from facemtl.contract import EXPRESSIONS, model_reading
from facemtl.data.registry import load_dataset
from facemtl.evaluate.protocol import evaluate, predict_samples
from facemtl.infer.onnx_model import OnnxModel
from facemtl.models import create_model
from facemtl.models.export import contract_outputs, export_onnx
from facemtl.train.config import TrainConfig
from test_export import S, trained_looking

METRICS = ("mae_yaw", "mae_pitch", "mae_roll", "mae_mean", "bias_yaw", "bias_pitch", "bias_roll",
           "nme_inter_ocular", "nme_bbox")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(torch model, ONNX path, checkpoint path) of one randomly initialised model at S px, crop 1.5.
    Torch runs on one thread throughout (as in test_export, whose tolerances depend on it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("tiny")
    model = trained_looking(create_model("mtl_mobilenetv3_small", width=0.25))
    export_onnx(model, tmp / "tiny.onnx", S, 1.5, check=False)  # compared with torch below, on the metrics
    cfg = TrainConfig(name="tiny", model="mtl_mobilenetv3_small", model_options={"width": 0.25},
                      input_size=S, crop_scale=1.5)
    torch.save({"model": model.state_dict(), "config": cfg.to_dict()}, tmp / "tiny.pt")
    yield model, tmp / "tiny.onnx", tmp / "tiny.pt"
    torch.set_num_threads(threads)


def run_eval(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["eval", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def torch_predict(model: torch.nn.Module):
    """The protocol's ``predict`` for a torch model."""
    return lambda crops: {k: v.numpy() for k, v in
                          contract_outputs(model, torch.from_numpy(crops.transpose(0, 3, 1, 2)).float()).items()}


def test_onnx_and_checkpoint_match_the_protocol(tiny, aflw2000_dev, tmp_path, capsys):
    model, onnx_path, ckpt = tiny
    samples = load_dataset("aflw2000", aflw2000_dev)
    want = evaluate(model_reading(torch_predict(model)), samples, S, 1.5)  # eval's default
    posed = sum(s.pose is not None for s in samples)
    for path, backend in ((onnx_path, "onnxruntime"), (ckpt, "torch")):
        args = ["eval", "--dataset", "aflw2000", "--root", str(aflw2000_dev), "--model", str(path),
                "--json", str(tmp_path / "r.json"), "--threads", "1"]
        if backend == "torch":
            done = subprocess.run([sys.executable, "-m", "facemtl.cli", *args], capture_output=True, text=True)
            rc, out = done.returncode, done.stdout
        else:
            rc, out = main(args), capsys.readouterr().out
        assert rc == 0
        got = json.loads((tmp_path / "r.json").read_text())
        assert got["backend"] == backend and got["input_size"] == S and got["crop_scale"] == 1.5
        assert got["n"] == len(samples) == 32
        assert got["pose_n"] + got["pose_filtered"] == posed and got["pose_filtered"] >= 1  # one |angle| > 99 image
        for k in METRICS:
            assert math.isfinite(got[k]), k
            assert got[k] == pytest.approx(want[k], abs=1e-3), k
        assert f"{got['mae_mean']:.2f}" in out and f"{got['pose_n']} used, {got['pose_filtered']} filtered" in out
        assert "inter-ocular" in out


def test_crop_margin_is_the_models_crop_scale(tiny, aflw2000_dev, tmp_path, capsys):
    model, _, _ = tiny
    path = tmp_path / "wide.onnx"
    export_onnx(model, path, S, 2.0)
    rc, _, _ = run_eval(capsys, "--dataset", "aflw2000", "--root", str(aflw2000_dev), "--model", str(path),
                        "--json", str(tmp_path / "r.json"))
    assert rc == 0
    got = json.loads((tmp_path / "r.json").read_text())
    samples = load_dataset("aflw2000", aflw2000_dev)
    predict = model_reading(OnnxModel(path, threads=1))  # the same network as the torch model (first test)
    want = evaluate(predict, samples, S, 2.0)
    other = evaluate(predict, samples, S, 1.5)
    assert got["crop_scale"] == 2.0
    assert got["mae_mean"] == pytest.approx(want["mae_mean"], abs=1e-3)
    assert abs(other["mae_mean"] - want["mae_mean"]) > 1e-2  # the margin does change the numbers


def test_flip_averaging_lowers_the_shipped_models_error_on_held_out_300w(shared, tmp_path, capsys):
    """The mirrored crop's answer, mapped back (landmark order, x, yaw and roll signs), must agree
    with the crop's own: averaging them lowers the error on the held-out real faces (100 helen-train
    faces, manual points); a wrong mapping would raise it several-fold."""
    root = shared / "data" / "300w" / "helen-train"
    nme = {}
    for flip in ("--flip", "--no-flip"):
        assert main(["eval", "--dataset", "300w", "--root", str(root), "--option", "holdout=val",
                     "--expression-model", "none", flip, "--json", str(tmp_path / "r.json")]) == 0
        got = json.loads((tmp_path / "r.json").read_text())
        assert got["flip"] == (flip == "--flip")
        nme[flip] = got["nme_inter_ocular"]
    assert "flip-averaged" in capsys.readouterr().out
    assert nme["--flip"] < 0.97 * nme["--no-flip"] and nme["--no-flip"] < 0.06, nme


def test_expression_accuracy_on_ckplus(tiny, shared, capsys, tmp_path):
    _, onnx_path, _ = tiny
    root = shared / "data" / "expression" / "ckplus48"
    rc, out, _ = run_eval(capsys, "--dataset", "ckplus", "--root", str(root), "--model", str(onnx_path),
                          "--json", str(tmp_path / "r.json"))
    assert rc == 0
    got = json.loads((tmp_path / "r.json").read_text())
    samples = load_dataset("ckplus", root)
    outputs = predict_samples(model_reading(OnnxModel(onnx_path, threads=1)), samples, S, 1.5)  # eval's default
    labels = np.array([s.expression for s in samples])
    pred = outputs["expression"].argmax(1)
    assert got["expression_accuracy"] == pytest.approx(np.mean(pred == labels))
    recalls = {k.removeprefix("expression_recall_"): v for k, v in got.items() if k.startswith("expression_recall_")}
    assert set(recalls) == {EXPRESSIONS[c] for c in np.unique(labels)}  # the classes CK+ has, no others
    for name, recall in recalls.items():
        c = EXPRESSIONS.index(name)
        assert recall == pytest.approx(np.mean(pred[labels == c] == c))
    assert 0 <= got["expression_macro_f1"] <= 1 and "recall per class: " in out
    assert "mae_mean" not in got and "nme_bbox" not in got  # CK+ has no pose or landmarks
    assert "expression accuracy" in out


def test_errors(tiny, aflw2000_dev, tmp_path, capsys):
    from facemtl.infer.onnx_model import DEFAULT_MODEL

    _, onnx_path, _ = tiny
    root = str(aflw2000_dev)
    rc, _, err = run_eval(capsys, "--dataset", "aflw2000", "--root", str(tmp_path / "missing"), "--model",
                          str(onnx_path))
    assert rc == 2 and "missing" in err
    rc, _, err = run_eval(capsys, "--dataset", "aflw2000", "--root", root, "--model", str(onnx_path),
                          "--option", "nope=1")
    assert rc == 2 and "nope" in err
    rc, _, err = run_eval(capsys, "--dataset", "aflw2000", "--root", root, "--model", str(tmp_path / "gone.pt"))
    assert rc == 2 and "gone.pt" in err
    if not DEFAULT_MODEL.is_file():
        rc, _, err = run_eval(capsys, "--dataset", "aflw2000", "--root", root, "--json", str(tmp_path / "r.json"))
        assert rc == 2 and "--model" in err and not (tmp_path / "r.json").exists()


def test_parse_options():
    from facemtl.tools.eval import parse_options

    assert parse_options(["split=test", "skip_errors=true", "n=3", "x=1.5"]) == {
        "split": "test", "skip_errors": True, "n": 3, "x": 1.5}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["novalue"])


def test_report_lists_every_metric_present():
    from facemtl.tools.eval import report

    base = {"dataset": "synth", "root": "r", "n": 4.0, "model": "m.onnx", "name": "net", "input_size": 64,
            "crop_scale": 1.5, "backend": "onnxruntime"}
    text = report({**base, "occlusion_recall_at_p80": 0.4567, "expression_accuracy": 0.25,
                   "expression_macro_f1": 0.2, "expression_recall_happy": 0.5, "expression_recall_fear": 0.0})
    assert "hidden-landmark recall at 80 % precision: 45.7 %" in text
    assert "expression accuracy: 25.0 %, macro F1 20.0 %" in text and "recall per class: happy 50 %, fear 0 %" in text
    assert "MAE" not in text and "NME" not in text
    text = report({**base, "mae_yaw": 1.0, "mae_pitch": 2.0, "mae_roll": 3.0, "mae_mean": 2.0, "bias_yaw": -0.5,
                   "bias_pitch": 0.25, "bias_roll": 0.0, "pose_n": 3, "pose_filtered": 1})
    assert "3 used, 1 filtered" in text and "    1.00    2.00    3.00    2.00" in text
    assert "   -0.50   +0.25   +0.00" in text
    assert "PnP" not in text and "slope" not in text
    text = report({**base, "mae_yaw": 1.0, "mae_pitch": 2.0, "mae_roll": 3.0, "mae_mean": 2.0, "bias_yaw": -0.5,
                   "bias_pitch": 0.25, "bias_roll": 0.0, "pose_n": 3, "pose_filtered": 1, "pitch_slope": 0.8,
                   "mae_yaw_landmarks": 4.0, "mae_pitch_landmarks": 5.0, "mae_roll_landmarks": 6.0,
                   "mae_mean_landmarks": 5.0})
    assert "MAE, PnP          4.00    5.00    6.00    5.00" in text and "pitch slope (predicted on true): 0.80" in text


def test_scores_per_yaw_bin_by_hand():
    """Pose MAE and box NME per |yaw| bin of the AFLW2000-3D protocol, on hand-made outputs: each
    face's error is known, and the bins split the faces by the annotated yaw."""
    from facemtl.data.sample import Sample
    from facemtl.evaluate.protocol import score
    from facemtl.tools.eval import report

    square = np.stack(np.meshgrid(np.linspace(0, 100, 17), np.linspace(0, 100, 4)), -1).reshape(-1, 2)[:68]
    yaws = [10.0, -25.0, 45.0, 70.0, -99.0]
    samples = [Sample("synth", pose=np.array([y, 0.0, 0.0]), landmarks=square) for y in yaws]
    errors = [1.0, 3.0, 6.0, 9.0, 12.0]  # degrees of yaw; and pixels of landmark shift, per face
    outputs = {"pose": np.array([[y + e, 0.0, 0.0] for y, e in zip(yaws, errors)]),
               "landmarks": np.stack([square + [e, 0.0] for e in errors])}
    got = score(outputs, samples)
    assert (got["n_yaw0_30"], got["n_yaw30_60"], got["n_yaw60_99"]) == (2, 1, 2)
    # Mean over yaw, pitch and roll of the absolute errors: a third of the yaw error.
    assert got["mae_mean_yaw0_30"] == pytest.approx((1 + 3) / 2 / 3)
    assert got["mae_mean_yaw60_99"] == pytest.approx((9 + 12) / 2 / 3)
    assert got["nme_bbox_yaw30_60"] == pytest.approx(6.0 / 100)  # box side 100 px
    # Outward: + when |yaw| is read larger; -25 read as -22 is 3 deg short, -99 read as -87 12 short.
    assert got["yaw_outward_yaw0_30"] == pytest.approx((1 - 3) / 2)
    assert got["yaw_outward_yaw60_99"] == pytest.approx((9 - 12) / 2)
    text = report({"dataset": "synth", "root": "r", "model": "m", "name": "n", "input_size": 64,
                   "crop_scale": 1.5, "backend": "onnxruntime", "pose_filtered": 0, **got})
    assert ("by |yaw| 0-30 / 30-60 / 60-99: n 2 / 1 / 2; MAE 0.67 / 2.00 / 3.50°; yaw outward -1.00 / 6.00 / -1.50°; "
            "box NME 2.00 / 6.00 / 10.50 %") in text

"""The dedicated expression path: faces-mux reader and its person-level split, the expression
network exported to ONNX, FaceAnalyzer and facemtl eval running it, one training run on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from facemtl.contract import EXPRESSIONS
from facemtl.data.facesmux import VAL_N, person, read_faces_mux
from facemtl.data.registry import load_dataset
from facemtl.data.sample import Sample
from facemtl.data.splits import holdout
from facemtl.infer.onnx_model import DEFAULT_EXPRESSION_MODEL
from facemtl.io import FileError



def _write_mux(root: Path, rows: list[tuple[str, str]], header: str = "image,emotion") -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, _ in rows:
        cv2.imwrite(str(root / "images" / name), rng.integers(0, 256, (40, 36, 3), dtype=np.uint8))
    (root / "legend.csv").write_text(header + "\n" + "".join(f"{n},{e}\n" for n, e in rows))
    return root


# ---------------------------------------------------------------- reader and split


def test_faces_mux_reader_on_written_folder(tmp_path: Path):
    rows = [("Ann_Lee_0001.jpg", "happy"), ("Ann_Lee_0002.jpg", "Sadness"), ("Bo_7.jpg", "contempt"),
            ("Bo_12.jpg", "anger"), ("Cy_0001.jpg", "neutral")]
    root = _write_mux(tmp_path / "mux", rows)
    samples = load_dataset("faces-mux", root)
    assert [Path(s.image_path).name for s in samples] == ["Ann_Lee_0001.jpg", "Ann_Lee_0002.jpg", "Bo_12.jpg",
                                                           "Cy_0001.jpg"]  # contempt dropped
    assert [EXPRESSIONS[s.expression] for s in samples] == ["happy", "sad", "angry", "neutral"]
    assert [s.meta["group"] for s in samples] == ["Ann_Lee", "Ann_Lee", "Bo", "Cy"]
    assert samples[0].load_image().shape == (40, 36, 3) and samples[0].source == "faces-mux"
    kept = read_faces_mux(root, include_contempt=True)
    assert len(kept) == 5 and kept[2].expression is None and kept[2].meta["label"] == "contempt"
    assert person("George_W_Bush_0012.jpg") == "George_W_Bush" and person("Dwarakish_101.jpg") == "Dwarakish"


def test_faces_mux_reader_errors(tmp_path: Path):
    with pytest.raises(FileError, match="root folder not found"):
        read_faces_mux(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileError, match="legend.csv"):
        read_faces_mux(tmp_path / "empty")
    root = _write_mux(tmp_path / "b", [("x_1.jpg", "smug")])
    with pytest.raises(FileError, match="line 2: unknown emotion 'smug'"):
        read_faces_mux(root)
    root = _write_mux(tmp_path / "c", [("x_1.jpg", "happy")])
    (root / "legend.csv").write_text("image,emotion\nx_1.jpg,happy\ny_1.jpg,sad\n")
    with pytest.raises(FileError, match="line 3: image .*y_1.jpg not found"):
        read_faces_mux(root)
    root = _write_mux(tmp_path / "d", [("x_1.jpg", "happy")], header="file,label")
    with pytest.raises(FileError, match="lacks the columns"):
        read_faces_mux(root)


def test_group_holdout_keeps_people_whole_and_parts_disjoint():
    rng = np.random.default_rng(1)
    samples = [Sample(source="t", image_path=f"/x/p{g}_{i}.jpg", meta={"group": f"p{g}"})
               for g in range(40) for i in range(int(rng.integers(1, 9)))]
    val, train = holdout(samples, "val", 50), holdout(samples, "train", 50)
    assert len(val) >= 50 and len(val) + len(train) == len(samples)
    assert not {s.image_path for s in val} & {s.image_path for s in train}
    assert not {s.meta["group"] for s in val} & {s.meta["group"] for s in train}
    # The same cut whatever the order of the samples.
    assert {s.image_path for s in holdout(samples[::-1], "val", 50)} == {s.image_path for s in val}
    # Without groups: exactly n, as before.
    plain = [Sample(source="t", image_path=f"/x/{i}.jpg") for i in range(30)]
    assert len(holdout(plain, "val", 7)) == 7


def test_faces_mux_real_folder(shared: Path):
    root = shared / "data" / "expression" / "faces-mux"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    everything = read_faces_mux(root)
    val = load_dataset("faces-mux", root, holdout="val", holdout_n=VAL_N)
    train = load_dataset("faces-mux", root, holdout="train", holdout_n=VAL_N)
    assert len(everything) == 3896  # 3,904 faces less 8 contempt
    assert VAL_N <= len(val) < VAL_N + 200 and len(val) + len(train) == len(everything)
    assert not {s.meta["group"] for s in val} & {s.meta["group"] for s in train}
    assert set(np.unique([s.expression for s in val])) == set(range(7))  # every class in validation


# ---------------------------------------------------------------- network and ONNX


@pytest.fixture(scope="module")
def expression_onnx() -> Path:
    """The shipped expression model (``facemtl export --flip-average``, then ``facemtl.tools.quantize_expression``)."""
    if not DEFAULT_EXPRESSION_MODEL.is_file():
        pytest.skip("no expression model shipped")
    return DEFAULT_EXPRESSION_MODEL


def test_expression_onnx_outputs(expression_onnx: Path):
    from facemtl.infer.onnx_model import OnnxModel

    model = OnnxModel(expression_onnx, threads=1)
    assert model.outputs == ["expression"] and model.expressions == EXPRESSIONS
    assert (model.input_size, model.crop_scale, model.name) == (48, 1.1111, "expression_lite0")
    assert model.fixed_batch is None and DEFAULT_EXPRESSION_MODEL.stat().st_size < 10e6
    crops = np.random.default_rng(2).integers(0, 256, (5, 48, 48, 3), dtype=np.uint8)
    probs = model.predict(crops)["expression"]
    assert probs.shape == (5, 7) and np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert np.abs(probs - probs[0]).max() > 1e-3  # the rows differ with the input
    # Flip averaging is in the graph: a mirrored crop gives the same probabilities.
    np.testing.assert_allclose(model.predict(crops[:, :, ::-1].copy())["expression"], probs, atol=1e-5)
    # Grey inside: a colour crop and its grey version (OpenCV's BGR2GRAY) agree.
    grey = np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) for c in crops])[..., None].repeat(3, axis=3)
    np.testing.assert_allclose(model.predict(grey)["expression"], probs, atol=0.02)  # grey rounded to uint8


def test_analyzer_runs_expression_model_on_landmark_box_crop(expression_onnx: Path, tmp_path: Path):
    from onnx_stub import build_model

    from facemtl.contract import crop_face, landmark_box
    from facemtl.infer import FaceAnalyzer
    from facemtl.infer.onnx_model import OnnxModel

    main = build_model(tmp_path / "toy.onnx", follow=False)
    image = np.random.default_rng(3).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    box = np.array([[60.0, 40.0, 130.0, 110.0]])
    face = FaceAnalyzer(main, detector=None, expression_model=expression_onnx)(image, boxes=box)[0]
    expr = OnnxModel(expression_onnx, threads=1)
    crop = crop_face(image, landmark_box(face.landmarks), expr.crop_scale, expr.input_size)[0]
    model_probs = expr.predict(crop[None])["expression"][0]
    # The main model's own head alone otherwise: a model given by path does not get the shipped one.
    head = FaceAnalyzer(main, detector=None)(image, boxes=box)[0].expression.probs
    assert np.abs(head - model_probs).max() > 1e-3
    want = (head + model_probs) / 2  # reported: the mean of the two
    np.testing.assert_allclose(face.expression.probs, want, atol=1e-5)
    assert face.expression.names == EXPRESSIONS and face.expression.label == EXPRESSIONS[int(want.argmax())]


def test_shipped_expression_model(shared: Path):
    """The shipped model on every 12th FER2013 validation face (300): far above the most common class, every
    class predicted (the full figures come from facemtl eval, docs/MODEL_CARD.md)."""
    if not DEFAULT_EXPRESSION_MODEL.is_file():
        pytest.skip("no expression model shipped")
    from facemtl.data.fer2013 import read_fer2013
    from facemtl.evaluate.protocol import predict_samples
    from facemtl.infer import FaceAnalyzer
    from facemtl.infer.onnx_model import OnnxModel

    model = OnnxModel(DEFAULT_EXPRESSION_MODEL, threads=1)
    samples = read_fer2013(shared / "data" / "expression" / "fer2013", "validation")[::12]  # sorted by class
    probs = predict_samples(model, samples, model.input_size, model.crop_scale)["expression"]
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-4)
    labels = np.array([s.expression for s in samples])
    majority = np.bincount(labels).max() / len(labels)  # 0.25 on these faces
    assert np.mean(probs.argmax(1) == labels) > majority + 0.1
    assert len(np.unique(probs.argmax(1))) == 7
    # The default analyzer takes expression from it.
    analyzer = FaceAnalyzer(detector=None)
    assert analyzer.expression_model is not None and analyzer.expression_model.path == DEFAULT_EXPRESSION_MODEL


def _write_tight_faces(root: Path, value: int, n: int) -> Path:
    """A faces-mux folder of ``n`` uniform images of grey level ``value``, labelled in turn."""
    (root / "images").mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"p{i}_1.png"), np.full((48, 48, 3), value, np.uint8))
    rows = "".join(f"p{i}_1.png,{EXPRESSIONS[i % 7]}\n" for i in range(n))
    (root / "legend.csv").write_text("image,emotion\n" + rows)
    return root


def _write_config(tmp_path: Path, model: str = "expression_lite0") -> Path:
    """An expression config whose two training sources are told apart by their grey level (60 and 200)."""
    sources = [(_write_tight_faces(tmp_path / f"mux{v}", v, 12), w) for v, w in ((60, 0.75), (200, 0.25))]
    config = tmp_path / "expr.yaml"
    config.write_text(f"model: {model}\ninput_size: 48\ncrop_scale: 1.1111\ndata:\n" + "".join(
        f"  - {{type: dataset, name: faces-mux, root: {root}, weight: {w}}}\n" for root, w in sources))
    return config


def test_quantize_expression_calibrates_on_the_configs_training_sources(tmp_path: Path):
    from facemtl.tools.quantize_expression import calibration_crops

    config = _write_config(tmp_path)
    crops = calibration_crops(config, 8)
    assert crops.shape == (8, 48, 48, 3) and crops.dtype == np.uint8
    assert np.all(crops == crops[..., :1])  # grey in all three channels
    levels = np.median(crops.reshape(8, -1), axis=1)
    assert sorted(levels.tolist()) == [60] * 6 + [200] * 2  # the sources' weights, 0.75 : 0.25
    with pytest.raises(ValueError, match="not an expression model's config"):
        calibration_crops(_write_config(tmp_path / "other", model="mtl_lite0"), 8)


def test_quantize_expression_writes_an_int8_twin(tmp_path: Path, capsys, torch_one_thread):
    import onnx
    import torch

    from facemtl.infer.onnx_model import OnnxModel
    from facemtl.models import create_model
    from facemtl.models.export import export_onnx
    from facemtl.tools.quantize_expression import main
    from facemtl.tools.weights_fp16 import halve_weights, restore_weights

    torch.manual_seed(0)
    model = create_model("expression_lite0", flip_average=True).eval()
    export_onnx(model, tmp_path / "e32.onnx", 48, 1.1111)
    halve_weights(tmp_path / "e32.onnx", tmp_path / "e16.onnx")
    # restore_weights undoes halve_weights: float32 initializers again, the same answers as the halved file.
    assert restore_weights(tmp_path / "e16.onnx", tmp_path / "back.onnx") > 50
    back = onnx.load(str(tmp_path / "back.onnx"))
    assert not any(n.op_type == "Cast" for n in back.graph.node)
    assert all(i.data_type == onnx.TensorProto.FLOAT for i in back.graph.initializer if i.dims)
    crops = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 3), dtype=np.uint8)
    half = OnnxModel(tmp_path / "e16.onnx", threads=1).predict(crops)["expression"]
    np.testing.assert_allclose(OnnxModel(tmp_path / "back.onnx", threads=1).predict(crops)["expression"], half,
                               atol=1e-6)

    args = ["--onnx", str(tmp_path / "e16.onnx"), "--config", str(_write_config(tmp_path)),
            "--out", str(tmp_path / "e8.onnx"), "--n-calibration", "16", "--n-check", "8"]
    assert main(args) == 0
    assert "same class" in capsys.readouterr().out
    int8 = onnx.load(str(tmp_path / "e8.onnx"))
    assert any(n.op_type == "DequantizeLinear" for n in int8.graph.node)
    meta = {p.key: p.value for p in int8.metadata_props}
    assert meta["facemtl_model"] == "expression_lite0" and "int8" in meta["facemtl_quantization"]
    probs = OnnxModel(tmp_path / "e8.onnx", threads=1).predict(crops)["expression"]
    assert probs.shape == (4, 7)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert main(args[:2] + ["--config", "default", "--out", str(tmp_path / "x.onnx")]) == 2  # not an expression config
    assert "not an expression model's config" in capsys.readouterr().err
    assert main(["--onnx", str(tmp_path / "none.onnx"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "none.onnx: model file not found" in capsys.readouterr().err


# ---------------------------------------------------------------- eval and training


def test_eval_uses_expression_model_and_plots_confusion(expression_onnx: Path, tmp_path: Path, capsys):
    from onnx_stub import build_model

    from facemtl.cli import main

    root = _write_mux(tmp_path / "mux", [(f"p{i}_1.jpg", EXPRESSIONS[i % 7]) for i in range(14)])
    main_model = build_model(tmp_path / "toy.onnx", follow=False)
    args = ["eval", "--dataset", "faces-mux", "--root", str(root), "--model", str(main_model), "--threads", "1"]
    assert main(args + ["--expression-model", str(expression_onnx), "--json", str(tmp_path / "e.json"),
                        "--confusion", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    got = json.loads((tmp_path / "e.json").read_text())
    assert got["expression_model"] == str(expression_onnx) and "expression from" in out
    assert got["expression_with_head"] and "averaged with the main model's head" in out
    assert "recall per class:" in out and "confusion (rows true" in out
    confusion = np.array(got["expression_confusion"])
    assert confusion.shape == (7, 7) and confusion.sum() == 14 and np.all(confusion.sum(1) == 2)
    assert np.trace(confusion) / 14 == pytest.approx(got["expression_accuracy"])
    assert cv2.imread(str(tmp_path / "c.png")) is not None
    assert main(args + ["--json", str(tmp_path / "m.json")]) == 0  # --model given: its own head
    assert "expression_model" not in json.loads((tmp_path / "m.json").read_text())


def test_training_on_tiny_data(tmp_path: Path, torch_one_thread):
    import torch

    from facemtl.train.config import TrainConfig
    from facemtl.train.expression import class_weights, train
    from facemtl.train.checkpoint import load_trained

    rng = np.random.default_rng(4)
    fer = tmp_path / "fer"
    fer.mkdir()
    for split in ("train", "validation"):
        np.savez(fer / f"{split}.npz", images=rng.integers(0, 256, (21, 48, 48), dtype=np.uint8),
                 labels=np.arange(21) % 7, classes=np.array(["angry", "disgust", "fear", "happy", "sad", "surprise",
                                                               "neutral"]))
    mux = _write_mux(tmp_path / "mux", [(f"p{i}_1.jpg", EXPRESSIONS[i % 7]) for i in range(30)])
    # configs/expression.yaml as written (model, loss, augmentation), on tiny data.
    from dataclasses import replace

    from facemtl.train.config import DataSpec

    shipped = TrainConfig.load("expression")
    assert [s.type for s in shipped.data] == ["fer2013", "dataset"] and shipped.data[1].name == "faces-mux"
    cfg = replace(shipped, model_options={**shipped.model_options, "pretrained": False}, input_size=32, steps=3,
                  epoch_steps=3, batch_size=6, warmup_steps=1, log_every=1, threads=1,
                  data=[replace(shipped.data[0], root=str(fer)),
                        DataSpec(type="dataset", name="faces-mux", root=str(mux), weight=1,
                                 options={"holdout": "train", "holdout_n": 8})],
                  val={"datasets": [{"name": "mux-val", "dataset": "faces-mux", "root": str(mux),
                                     "options": {"holdout": "val", "holdout_n": 8}}]})
    path = train(cfg, tmp_path / "run")
    model, loaded = load_trained(path)
    assert loaded.model == "expression_lite0" and loaded.input_size == 32
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["history"][-1]["val"]["mux-val"]["n"] < 30
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(log) == 4 and all(np.isfinite(float(row.split(",")[1])) for row in log[1:])
    # Training moved the weights away from the (seeded) initial ones.
    from facemtl.models import create_model

    torch.manual_seed(cfg.seed)
    start = create_model(cfg.model, **cfg.model_options)
    assert not torch.allclose(start.fc.weight, model.fc.weight)
    # Class weights: rare classes weigh more; power 0 is unweighted.
    w = class_weights(np.array([100, 400, 100, 100, 100, 25, 100]), 0.5)
    assert w[5] == pytest.approx(2 * w[0]) and w[1] == pytest.approx(w[0] / 2)
    np.testing.assert_allclose(class_weights(np.array([5, 50, 1, 1, 1, 1, 1]), 0.0), 1)

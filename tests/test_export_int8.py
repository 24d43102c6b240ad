"""``facemtl export --int8``: static QDQ int8 of a tiny multi-task model, calibrated on real LFW faces.

The model is randomly initialised, with batch-norm statistics from real face crops so that its
activations have realistic ranges. A random network amplifies quantisation noise far more than a
trained one, so closeness is measured against the spread of the fp32 outputs between crops; two
deliberately broken quantisations (calibrated on grey images; heads and decoding quantised too)
show that the tolerance catches them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from facemtl.cli import main
from facemtl.contract import crop_face
from facemtl.data.registry import load_dataset
from facemtl.data.transforms import face_box
from facemtl.infer.onnx_model import OnnxModel
from facemtl.models import create_model
from facemtl.models.export import export_onnx
from facemtl.tools import export as int8_export
from facemtl.train.config import TrainConfig

S = 64
OUTPUTS = ("pose", "landmarks", "visibility", "expression")


def save_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    cfg = TrainConfig(name="tiny", model="mtl_mobilenetv3_small", model_options={"width": 0.25},
                      input_size=S, crop_scale=1.5)
    torch.save({"model": model.state_dict(), "config": cfg.to_dict()}, path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory, shared):
    """(fp32 path, int8 path, calibration crops) of one tiny model with real-data batch-norm statistics."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("int8")
    crops = int8_export.face_crops(shared / "data" / "lfw", S, 1.5, 32)
    torch.manual_seed(0)
    model = create_model("mtl_mobilenetv3_small", width=0.25)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the batch
        model.train()
        model(torch.from_numpy(crops.transpose(0, 3, 1, 2)).float())
    # No torch/ONNX check: export_onnx's 1e-4 degree tolerance is tighter than float32 sums of the
    # near-uniform bin distributions of a random model (test_eval_cli compares the two paths).
    export_onnx(model.eval(), tmp / "tiny.onnx", S, 1.5, check=False)
    int8_export.quantize_int8(tmp / "tiny.onnx", tmp / "tiny.int8.onnx", crops, chunk=16)
    yield tmp / "tiny.onnx", tmp / "tiny.int8.onnx", crops
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def real_crops(aflw2000_dev) -> np.ndarray:
    """The evaluation protocol's crops of the 32 aflw2000-dev faces."""
    crops = []
    for s in load_dataset("aflw2000", aflw2000_dev):
        image = s.load_image()
        crops.append(crop_face(image, face_box(s, image), 1.5, S)[0])
    return np.stack(crops)


def relative_deviation(fp32: Path, other: Path, crops: np.ndarray) -> dict[str, float]:
    """Mean |other - fp32| per output over the crops, as a fraction of the fp32 outputs' mean
    absolute deviation between crops."""
    ref, got = OnnxModel(fp32, threads=1).predict(crops), OnnxModel(other, threads=1).predict(crops)
    return {k: float(np.abs(got[k] - ref[k]).mean() / np.abs(ref[k] - ref[k].mean(0)).mean()) for k in OUTPUTS}


def test_int8_file(exported):
    fp32, int8, _ = exported
    assert int8.stat().st_size < fp32.stat().st_size
    model = onnx.load(int8)
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    # Every Conv weight is stored as int8, behind a DequantizeLinear.
    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs
    for conv in convs:
        dq = producer[conv.input[1]]
        assert dq.op_type == "DequantizeLinear" and inits[dq.input[0]].data_type == onnx.TensorProto.INT8
    # The decoding stays float: the expression softmax reads a float Gemm, not a dequantised tensor.
    softmax = next(n for n in model.graph.node if n.output[0] == "expression")
    assert producer[softmax.input[0]].op_type == "Gemm"
    heads = set(int8_export.head_nodes(onnx.load(fp32)))
    assert not any(n.name in heads for n in onnx.load(fp32).graph.node if n.op_type == "Conv")
    # The contract metadata survives; onnxruntime runs the file.
    m = OnnxModel(int8, threads=1)
    assert (m.input_size, m.crop_scale, m.name, m.outputs) == (S, 1.5, "mtl_mobilenetv3_small",
                                                               OnnxModel(fp32).outputs)
    quantization = {p.key: p.value for p in model.metadata_props}["facemtl_quantization"]
    assert "int8 static QDQ" in quantization and "percentile 99.999" in quantization


def test_int8_close_to_fp32_on_real_crops(exported, real_crops, tmp_path):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32, int8, calibration = exported
    deviation = relative_deviation(fp32, int8, real_crops)
    assert all(v < 1.0 for v in deviation.values()), deviation
    # Broken on purpose: activation ranges from grey images, which clip the activations of faces.
    grey = tmp_path / "grey.onnx"
    int8_export.quantize_int8(fp32, grey, np.full_like(calibration, 128), chunk=16)
    grey_deviation = relative_deviation(fp32, grey, real_crops)
    assert np.mean(list(deviation.values())) < 0.75 * np.mean(list(grey_deviation.values())), grey_deviation
    # Broken on purpose: every node quantised, the soft-argmax and the decoding too.
    prepared, everything = tmp_path / "prepared.onnx", tmp_path / "all.onnx"
    quant_pre_process(str(fp32), str(prepared))
    quantize_static(str(prepared), str(everything), int8_export._CropReader(calibration),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    all_deviation = relative_deviation(fp32, everything, real_crops)
    assert deviation["landmarks"] < 0.75 * all_deviation["landmarks"], all_deviation


def test_export_command(shared, tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = save_checkpoint(create_model("mtl_mobilenetv3_small", width=0.25), tmp_path / "tiny.pt")
    out = tmp_path / "tiny.onnx"
    rc = main(["export", "--checkpoint", str(ckpt), "--onnx", str(out), "--int8",
               "--calibration", str(shared / "data" / "lfw"), "--n-calibration", "16", "--n-check", "4"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "int8 vs fp32 on 4 held-out crops" in text and "landmarks" in text
    assert "(min-max ranges)" in text  # a fresh model's near-constant activations: no histogram, the fallback
    fp32, int8 = OnnxModel(out, threads=1), OnnxModel(tmp_path / "tiny.int8.onnx", threads=1)
    assert (int8.input_size, int8.crop_scale, int8.name, int8.outputs) == (S, 1.5, fp32.name, fp32.outputs)
    assert "16 calibration crops" in onnx.load(tmp_path / "tiny.int8.onnx").metadata_props[-1].value

    # Errors: no calibration folder, no checkpoint, no face in the photos.
    assert main(["export", "--checkpoint", str(ckpt), "--onnx", str(tmp_path / "a.onnx"), "--int8"]) == 2
    assert "--calibration" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(tmp_path / "none.pt"), "--onnx", str(tmp_path / "a.onnx")]) == 2
    assert "none.pt" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    cv2.imwrite(str(empty / "blank.png"), np.zeros((80, 80, 3), np.uint8))
    rc = main(["export", "--checkpoint", str(ckpt), "--onnx", str(tmp_path / "b.onnx"), "--int8",
               "--calibration", str(empty)])
    assert rc == 2 and "no face found in 1 image files" in capsys.readouterr().err
    assert not (tmp_path / "b.int8.onnx").exists()

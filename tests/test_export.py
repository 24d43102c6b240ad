"""ONNX export: the contract's names, shapes and metadata, onnxruntime equal to torch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from facemtl.contract import EXPRESSIONS, OUTPUTS as CONTRACT_OUTPUTS
from facemtl.models import create_model
from facemtl.models.export import contract_outputs, export_onnx, max_abs_difference

S = 64
POSE_ATOL = 1e-3  # degrees: float32 sums over 66 bins differ by up to ~6.5e-4 (export_onnx docstring)


def assert_matches(got: np.ndarray, want: np.ndarray, name: str) -> None:
    """export_onnx's own bound: 1e-3 absolute for degrees, 1e-4 + 1e-5 |x| for the others."""
    if name in ("pose", "pose_std"):
        np.testing.assert_allclose(got, want, atol=POSE_ATOL, rtol=0, err_msg=name)
    else:
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5, err_msg=name)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def trained_looking(model: torch.nn.Module) -> torch.nn.Module:
    """Perturb every weight and set BN statistics from data, so outputs vary from image to image
    (a fresh model's heads sit at their near-constant initialisation, which would test little)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration passes
        model.train()
        for _ in range(3):
            model(torch.rand(8, 3, S, S) * 255)
    return model.eval()


def session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_multitask_export_matches_torch(tmp_path):
    model = trained_looking(create_model("mtl_mobilenetv3_small", width=0.5))
    path = tmp_path / "m.onnx"
    names = export_onnx(model, path, S, 1.5)
    assert names == list(CONTRACT_OUTPUTS)
    sess = session(path)
    (inp,) = sess.get_inputs()
    assert inp.name == "image" and inp.shape[1:] == [3, S, S] and isinstance(inp.shape[0], str)
    assert [o.name for o in sess.get_outputs()] == names
    image = torch.rand(5, 3, S, S, generator=torch.Generator().manual_seed(3)) * 255
    got = dict(zip(names, sess.run(None, {"image": image.numpy()})))
    want = contract_outputs(model, image)
    shapes = {"pose": (5, 3), "pose_std": (5, 3), "rotation": (5, 3, 3), "landmarks": (5, 68, 2),
              "visibility": (5, 68), "expression": (5, 7)}
    for k in names:
        assert got[k].shape == shapes[k] and got[k].dtype == np.float32
        assert_matches(got[k], want[k].numpy(), k)
    # The outputs are not trivially constant: a real comparison.
    assert got["pose"].std(0).min() > 0.1 and got["landmarks"].std(0).mean() > 1e-3
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta == {"facemtl_model": "mtl_mobilenetv3_small", "facemtl_input_size": str(S),
                    "facemtl_crop_scale": "1.5", "facemtl_expressions": ",".join(EXPRESSIONS)}
    assert model.training is False


def test_normalisation_is_in_the_graph(tmp_path):
    # BGR 0..255 in: a channel swap must change the result (no silent RGB/BGR ambiguity).
    model = trained_looking(create_model("sixdrepnet", backbone="resnet18"))
    path = tmp_path / "r.onnx"
    assert export_onnx(model, path, S, 1.2) == ["pose", "rotation"]
    image = torch.rand(2, 3, S, S) * 255
    sess = session(path)
    bgr = sess.run(["pose"], {"image": image.numpy()})[0]
    rgb = sess.run(["pose"], {"image": image.flip(1).numpy()})[0]
    assert np.abs(bgr - rgb).max() > 1e-3
    diff = max_abs_difference(model, path, image)
    assert set(diff) == {"pose", "rotation"}
    assert diff["pose"] < POSE_ATOL and diff["rotation"] < 1e-4


def test_pose_only_model_exports_its_heads_and_keeps_training_mode(tmp_path):
    model = trained_looking(create_model("hopenet", backbone="resnet18")).train()
    names = export_onnx(model, tmp_path / "h.onnx", S, 1.2)
    assert names == ["pose", "pose_std", "rotation"]
    assert model.training


def test_export_needs_a_name(tmp_path):
    from facemtl.models.sixdrepnet import SixDRepNet

    with pytest.raises(ValueError, match="registry name"):
        export_onnx(SixDRepNet(), tmp_path / "x.onnx", S, 1.2)
    assert not (tmp_path / "x.onnx").exists()


class _Drifting(torch.nn.Module):
    """Adds its call count to the pose: tracing freezes the count, so onnxruntime and torch differ."""

    facemtl_name = "drifting"

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return image.mean((2, 3)) + self.calls

    def decode(self, out: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pose": out}


def test_failed_check_leaves_the_output_path_alone(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous model")
    with pytest.raises(RuntimeError, match="not written, onnxruntime differs from torch.*pose"):
        export_onnx(_Drifting(), path, 8, 1.5)
    assert path.read_bytes() == b"previous model"
    assert [f.name for f in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left either
    assert export_onnx(_Drifting(), path, 8, 1.5, check=False) == ["pose"]
    assert onnx.load(str(path)).graph.output[0].name == "pose"


def test_export_keeps_half_weights_that_start_a_fine_tune(tmp_path):
    """``--keep-weights``: float16 tensors, weights only, and a model initialised from them gives the
    exported model's outputs up to float16 rounding."""
    from facemtl.cli import main
    from facemtl.losses import MultiTaskLoss
    from facemtl.train.checkpoint import initialise, read_checkpoint
    from facemtl.train.config import TrainConfig

    model = trained_looking(create_model("mtl_mobilenetv3_small", width=0.25))
    cfg = TrainConfig(name="tiny", model="mtl_mobilenetv3_small", model_options={"width": 0.25}, input_size=S)
    torch.save({"model": model.state_dict(), "config": cfg.to_dict(), "step": 7}, tmp_path / "run.pt")
    kept = tmp_path / "kept.pt"
    assert main(["export", "--checkpoint", str(tmp_path / "run.pt"), "--onnx", str(tmp_path / "m.onnx"),
                 "--keep-weights", str(kept)]) == 0
    state = read_checkpoint(kept)
    assert set(state) == {"model", "step", "config"} and state["step"] == 7
    assert all(v.dtype == torch.float16 for v in state["model"].values() if v.is_floating_point())
    fresh = create_model("mtl_mobilenetv3_small", width=0.25)
    initialise(state, fresh, MultiTaskLoss())
    x = torch.rand(2, 3, S, S) * 255
    with torch.no_grad():
        want, got = model.decode(model(x))["pose"], fresh.eval().decode(fresh(x))["pose"]
    assert torch.allclose(got, want, atol=0.5), (got - want).abs().max()


def test_export_calibrates_pose_std_on_the_runs_held_out_set(tmp_path, shared):
    """The exported ``pose_std`` is the bin spread times per-angle factors that make it the error's
    standard deviation on the config's held-out pose set (renders here) with flip averaging, and the kept
    weights hold them."""
    from facemtl.cli import main
    from facemtl.contract import model_reading
    from facemtl.evaluate.protocol import predict_samples
    from facemtl.infer.onnx_model import OnnxModel
    from facemtl.metrics import std_scale
    from facemtl.train.checkpoint import load_trained, torch_predictor
    from facemtl.train.config import DataSpec, TrainConfig
    from facemtl.train.trainer import validation_sets

    model = trained_looking(create_model("mtl_mobilenetv3_small", width=0.25))
    options = {"render_size": 96, "shared": str(shared)}
    cfg = TrainConfig(name="tiny", model="mtl_mobilenetv3_small", model_options={"width": 0.25}, input_size=S,
                      data=[DataSpec(type="synth", options=options)], val={"synth_n": 12})
    torch.save({"model": model.state_dict(), "config": cfg.to_dict(), "step": 3}, tmp_path / "run.pt")
    assert main(["export", "--checkpoint", str(tmp_path / "run.pt"), "--onnx", str(tmp_path / "m.onnx"),
                 "--keep-weights", str(tmp_path / "kept.pt")]) == 0
    samples = validation_sets(cfg)["synth"]
    labels = np.array([s.pose for s in samples])
    onnx = OnnxModel(tmp_path / "m.onnx").predict
    averaged = predict_samples(model_reading(onnx), samples, S, cfg.crop_scale)  # as calibrated
    assert np.allclose(std_scale(averaged["pose"], averaged["pose_std"], labels), 1.0, atol=1e-3)
    onnx_out = predict_samples(onnx, samples, S, cfg.crop_scale)
    kept, _ = load_trained(tmp_path / "kept.pt")
    raw = predict_samples(torch_predictor(model, torch.device("cpu")), samples, S, cfg.crop_scale)  # factor 1
    scale = kept.pose_head.std_scale.float().numpy()
    assert not np.allclose(scale, 1.0)
    np.testing.assert_allclose(onnx_out["pose_std"], raw["pose_std"] * scale, rtol=2e-3, atol=1e-3)


def test_unfold_onnx_gives_back_a_trainable_model(tmp_path):
    """facemtl.tools.unfold_onnx: a fresh model of the same architecture takes an exported file's
    folded weights back; eval mode reproduces the file and a train-mode batch of the same crops
    normalises nearly as eval mode does (the batch norms carry those crops' statistics)."""
    from facemtl.tools.unfold_onnx import unfold

    model = trained_looking(create_model("mtl_mobilenetv3_small", width=0.25))
    export_onnx(model, tmp_path / "m.onnx", S, 1.5)
    fresh = create_model("mtl_mobilenetv3_small", width=0.25)
    crops = np.random.default_rng(5).integers(0, 256, (64, S, S, 3), dtype=np.uint8)
    worst = unfold(tmp_path / "m.onnx", fresh, crops)
    assert set(worst) == set(contract_outputs(model, torch.zeros(1, 3, S, S)))
    assert max(worst.values()) < 1e-3, worst  # float32 rounding (pose in degrees)
    x = torch.from_numpy(crops.transpose(0, 3, 1, 2).astype(np.float32))
    with torch.no_grad():
        want = model.decode(model(x))["landmarks"]
        evaluated = fresh.eval().decode(fresh(x))["landmarks"]
        trained = fresh.train().decode(fresh(x))["landmarks"]
    assert torch.allclose(evaluated, want, atol=1e-4)
    assert (trained - evaluated).abs().mean() < 0.02 * (want - want.mean(0)).abs().mean() + 1e-3


def test_unfold_onnx_reads_a_file_with_the_presence_probe(tmp_path):
    """A shipped main model carries the face-presence probe (facemtl.tools.presence): its nodes are
    no layer of the network, so unfolding that file gives the same weights as the file without it."""
    import onnx

    from facemtl.tools.presence import attach, feature_reader
    from facemtl.tools.unfold_onnx import unfold

    export_onnx(trained_looking(create_model("mtl_mobilenetv3_small", width=0.25)), tmp_path / "m.onnx", S, 1.5)
    graph = onnx.load(str(tmp_path / "m.onnx"))
    crops = np.random.default_rng(5).integers(0, 256, (64, S, S, 3), dtype=np.uint8)
    width = feature_reader(graph)(crops[:1]).shape[-1]  # (N, crop and mirror, C)
    onnx.save(attach(graph, np.ones(width), 0.0), str(tmp_path / "p.onnx"))
    plain, probed = (create_model("mtl_mobilenetv3_small", width=0.25) for _ in range(2))
    unfold(tmp_path / "m.onnx", plain, crops)
    worst = unfold(tmp_path / "p.onnx", probed, crops)
    assert "presence" not in worst and max(worst.values()) < 1e-3, worst
    for (name, a), (_, b) in zip(plain.state_dict().items(), probed.state_dict().items()):
        assert torch.equal(a, b), name


def test_unfold_onnx_reads_an_int8_detector(tmp_path):
    """An int8 (QDQ) detector file, whose nodes need not run in the forward pass's order, unfolds
    by scope names into a fresh detector: every convolution, with its batch norm folded in, is the
    float model's the file was quantised from, up to the weights' int8 rounding."""
    from facemtl.models.export import export_detector_onnx
    from facemtl.tools.export import quantize_int8
    from facemtl.tools.unfold_onnx import _following_norms, unfold

    def folded(net: torch.nn.Module) -> dict[str, torch.Tensor]:
        norms = _following_norms(net)
        out = {}
        for name, conv in net.named_modules():
            if isinstance(conv, torch.nn.Conv2d):
                bn = norms.get(id(conv))
                gain = 1 if bn is None else (bn.weight / torch.sqrt(bn.running_var + bn.eps)).view(-1, 1, 1, 1)
                out[name] = (conv.weight * gain).detach()
        return out

    model = trained_looking(create_model("mos_mobilenetv2", input_size=S, width=0.25, dim=16))
    export_detector_onnx(model, tmp_path / "d.onnx", name="tiny")
    canvases = np.random.default_rng(3).integers(0, 256, (24, S, S, 3), dtype=np.uint8)
    quantize_int8(tmp_path / "d.onnx", tmp_path / "d.int8.onnx", canvases[:16])
    fresh = create_model("mos_mobilenetv2", input_size=S, width=0.25, dim=16)
    unfold(tmp_path / "d.int8.onnx", fresh, canvases)
    want, got = folded(model), folded(fresh)
    assert len(want) == len(got) > 40
    for name, w in want.items():  # per output channel int8: at most half a step of 1/127 of the largest
        assert (got[name] - w).abs().max() <= 0.005 * w.abs().max(), name

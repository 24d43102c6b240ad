"""Super-resolution (Super-FAN in small): the networks, one training step, exact resume, the ONNX
runtime path in FaceAnalyzer and ``facemtl study super-resolution`` end to end on a generated
300-W-style folder. Every network here is tiny and untrained (or trained for two steps)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("onnx")
from onnx_stub import build_model, face_layout  # noqa: E402

from facemtl.cli import main  # noqa: E402
from facemtl.data.degrade import Degradation, degrade, downsample  # noqa: E402
from facemtl.models import create_model  # noqa: E402
from facemtl.models.export import export_generator  # noqa: E402
from facemtl.train import superres as sr  # noqa: E402

TINY = {"channels": 8, "blocks": 1}


@pytest.fixture(autouse=True)
def _one_thread(torch_one_thread):
    yield


def write_300w_folder(root: Path, n: int = 4, size: int = 160) -> Path:
    """``n`` images with a face-like drawing (skin ellipse, dark eyes, brows, mouth, nose) and the
    iBUG-68 .pts of :func:`face_layout` placed on it (1-based, as 300-W writes them)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        side = rng.uniform(60, 90)
        x0, y0 = rng.uniform(30, size - 30 - side, 2)
        pts = np.array([x0, y0]) + face_layout() * side
        image = np.full((size, size, 3), (60 + 20 * i, 90, 120), np.uint8)
        c = pts.mean(0)
        cv2.ellipse(image, (int(c[0]), int(c[1])), (int(side / 2), int(side * 0.6)), 0, 0, 360, (140, 170, 210), -1)
        for group, colour in ((slice(36, 48), (30, 30, 30)), (slice(17, 27), (40, 60, 80)),
                              (slice(48, 60), (60, 60, 170)), (slice(27, 36), (110, 140, 190))):
            cv2.polylines(image, [np.round(pts[group]).astype(np.int32)], False, colour, 2)
        image = cv2.GaussianBlur(image, (0, 0), 0.8)
        cv2.imwrite(str(root / f"face{i}.png"), image)
        lines = ["version: 1", "n_points: 68", "{"] + [f"{x + 1:.3f} {y + 1:.3f}" for x, y in pts] + ["}"]
        (root / f"face{i}.pts").write_text("\n".join(lines) + "\n")
    return root


def sr_onnx(path: Path, bias: float = 0.0, std: float = 0.02) -> Path:
    """A tiny x4 generator exported to ``path``: residual weights of std ``std``, its last bias set
    to ``bias`` (every output pixel moves by 127.5 x bias grey levels)."""
    torch.manual_seed(0)
    g = create_model("sr_generator", **TINY)
    with torch.no_grad():
        g.tail.weight.normal_(0, std)
        g.tail.bias.fill_(bias)
    export_generator(g, path, 16)
    return path


# ---- networks and losses --------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [4, 8])
def test_generator_shapes_and_bicubic_start(scale):
    g = create_model("sr_generator", scale=scale, **TINY).eval()
    x = torch.rand(2, 3, 16, 12) * 255
    with torch.no_grad():
        y = g(x)
    assert y.shape == (2, 3, 16 * scale, 12 * scale)
    # The last layer starts at zero: an untrained generator is exactly bicubic upsampling.
    torch.testing.assert_close(y, F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False))
    d = create_model("sr_discriminator", channels=8)
    assert d(torch.rand(2, 3, 64, 64) * 255).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="scale"):
        create_model("sr_generator", scale=3)


def tiny_critic() -> torch.nn.Module:
    return create_model("mtl_mobilenetv3_small", width=0.25, decoder_dim=8, pose_bins=False, rotation_6d=False,
                        visibility=False, expression=False).eval().requires_grad_(False)


@pytest.mark.parametrize("adversarial", [0.01, 0.0])
def test_one_training_step(adversarial):
    cfg = sr.SRConfig(name="t", generator=TINY, discriminator={"channels": 8}, batch_size=3,
                      weights={"pixel": 1.0, "heatmap": 0.5, "adversarial": adversarial})
    nets = {"generator": create_model("sr_generator", **TINY)}
    if adversarial:
        nets["discriminator"] = create_model("sr_discriminator", channels=8)
    optims = {k: torch.optim.Adam(v.parameters(), lr=1e-3) for k, v in nets.items()}
    losses = sr.Losses(cfg, nets.get("discriminator"), tiny_critic(), 64)
    before = {k: [p.detach().clone() for p in v.parameters()] for k, v in nets.items()}
    crops = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    low, high = sr.make_batch(crops, cfg, 0)
    assert low.shape == (3, 3, 16, 16) and high.shape == (3, 3, 64, 64)
    values = sr.train_step(nets, optims, losses, low, high, 1e-3)
    expected = {"loss", "pixel", "heatmap"} | ({"adversarial", "discriminator"} if adversarial else set())
    assert set(values) == expected and all(np.isfinite(v) for v in values.values())
    assert values["pixel"] > 0 and values["heatmap"] >= 0
    for k, net in nets.items():  # every network took a step
        assert any(not torch.equal(a, b) for a, b in zip(before[k], net.parameters())), k


def test_heatmap_loss_is_zero_for_the_same_reading():
    hm = torch.randn(2, 68, 8, 8)
    assert float(sr.heatmap_loss(hm, hm)) == pytest.approx(0, abs=1e-6)
    assert float(sr.heatmap_loss(hm + torch.randn_like(hm), hm)) > 0.01


def test_degrade_is_seeded_and_clean_degradation_is_area_downsampling():
    crop = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    a = degrade(crop, 16, np.random.default_rng(5))
    assert a.shape == (16, 16, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, degrade(crop, 16, np.random.default_rng(5)))
    clean = Degradation(resampling={"area": 1}, blur=0, noise=0, jpeg=0)
    np.testing.assert_array_equal(degrade(crop, 16, np.random.default_rng(0), clean), downsample(crop, 16))


def test_training_resumes_exactly(tmp_path):
    root = write_300w_folder(tmp_path / "faces")
    cfg = sr.SRConfig(name="t", generator=TINY, discriminator={"channels": 8}, lr_size=8, batch_size=2, steps=2,
                      data=[{"name": "300w", "root": str(root)}], weights={"pixel": 1.0, "adversarial": 0.01},
                      warmup_steps=1)
    straight = sr.train(cfg, tmp_path / "a")
    sr.train(cfg, tmp_path / "b", stop_at=1)
    resumed = sr.train(cfg, tmp_path / "b", resume=True)
    for p, q in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q)
    (cache,) = (tmp_path / "a").glob("hr_crops_32_*.npy")
    assert np.load(cache).shape == (4, 32, 32, 3)
    generator, loaded_cfg = sr.load_generator(tmp_path / "b" / "last.pt")
    assert loaded_cfg.steps == 2 and generator.scale == 4


# ---- runtime and study ----------------------------------------------------------------------------


def test_analyzer_super_resolves_only_small_faces(tmp_path):
    from facemtl.infer import FaceAnalyzer

    toy = build_model(tmp_path / "toy.onnx", follow=False)  # pose = mean colour of the crop - 128
    model = sr_onnx(tmp_path / "sr.onnx", bias=0.1, std=0.0)  # bicubic brightened by 12.75 grey levels
    image = np.full((240, 320, 3), (120, 110, 100), np.uint8)
    boxes = np.array([[40.0, 40, 60, 60], [150.0, 60, 250, 160]])  # 20 px and 100 px faces
    plain = FaceAnalyzer(toy, detector=None, refine=False, flip=False)(image, boxes=boxes)
    faces = FaceAnalyzer(toy, detector=None, refine=False, flip=False, super_resolve=True,
                         sr_model=model)(image, boxes=boxes)
    for a, b in zip(plain, faces):  # the crop matrices are the contract's either way
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-4)
    assert faces[1].pose.yaw == pytest.approx(plain[1].pose.yaw, abs=1e-4)  # large face: same crop
    assert faces[0].pose.yaw - plain[0].pose.yaw == pytest.approx(12.75, abs=0.5)  # small face: SR crop
    big = FaceAnalyzer(toy, detector=None, refine=False, flip=False, super_resolve=True, sr_model=model,
                       sr_threshold=10)
    assert big(image, boxes=boxes)[0].pose.yaw == pytest.approx(plain[0].pose.yaw, abs=1e-4)


def test_study_end_to_end(tmp_path):
    root = write_300w_folder(tmp_path / "faces")
    model = sr_onnx(tmp_path / "sr.onnx")
    out = tmp_path / "study.json"
    argv = ["study", "super-resolution", "--root", str(root), "--holdout", "all", "--sizes", "16,24",
            "--json", str(out), "--model", str(model), "--figure", str(tmp_path / "docs" / "sr.png"),
            "--doc", str(tmp_path / "docs" / "studies.md"), "--figure-faces", "2"]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert set(result["sizes"]) == {"16", "24"} and result["n"] == 4
    for size in ("16", "24"):
        for way in ("bicubic", "sr"):
            v = result["sizes"][size][way]
            assert set(v) == {"psnr", "ssim", "nme"} and all(np.isfinite(x) for x in v.values())
            assert 0 < v["ssim"] <= 1
    # More pixels in, closer to the original out.
    assert result["sizes"]["24"]["bicubic"]["psnr"] > result["sizes"]["16"]["bicubic"]["psnr"]
    figure = cv2.imread(str(tmp_path / "docs" / "sr.png"))
    # A size header and four rows (low-res, bicubic, SR, original) of crops at the model's input size.
    assert figure.shape[0] == 24 + 4 * result["input_size"]
    assert "<!-- study super-resolution: begin -->" in (tmp_path / "docs" / "studies.md").read_text()


@pytest.mark.parametrize("name", ["superres", "superres_no_adv"])
def test_shipped_configs(name):
    from facemtl.data.registry import DATASETS

    cfg = sr.SRConfig.from_dict(sr.read_config(name))
    assert cfg.name == name
    # The critic is committed (a fresh clone trains without making it first) and is a heatmap model.
    critic = Path(__file__).resolve().parents[1] / cfg.critic
    assert critic.is_file(), f"{cfg.critic} is not committed"
    sr.load_critic(critic)  # raises unless it has heatmap landmarks
    assert all(d["name"] in DATASETS or d["name"] == "lfw" for d in cfg.data)
    # The 300-W validation faces that the study scores are never trained on.
    helen = [d for d in cfg.data if d["root"].endswith("helen-train")]
    assert helen and all(d["options"]["holdout"] == "train" for d in helen)
    assert (cfg.weight("adversarial") > 0) == (name == "superres")
    assert sr.read_config("default") is None  # ordinary configs are not taken for super-resolution ones


def test_load_critic_freezes_a_heatmap_model_and_refuses_others(tmp_path):
    from facemtl.losses import MultiTaskLoss
    from facemtl.train.checkpoint import save_checkpoint
    from facemtl.train.config import TrainConfig

    def checkpoint(name: str, options: dict) -> Path:
        cfg = TrainConfig(name=name, model="mtl_mobilenetv3_small", input_size=64, model_options=options)
        model = create_model(cfg.model, **options)
        criterion = MultiTaskLoss()
        save_checkpoint(tmp_path / f"{name}.pt", model, criterion, torch.optim.SGD(model.parameters(), lr=0.1), 1, cfg)
        return tmp_path / f"{name}.pt"

    small = {"width": 0.25, "decoder_dim": 8, "visibility": False, "expression": False}
    critic, size = sr.load_critic(checkpoint("critic", small))
    assert size == 64 and not critic.training and not any(p.requires_grad for p in critic.parameters())
    with pytest.raises(ValueError, match="heatmap"):
        sr.load_critic(checkpoint("regression", small | {"landmarks": "regression"}))

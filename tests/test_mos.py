"""The MOS face detector: anchor coding, targets, loss, data feedback, ONNX export and the
torch-free runtime, on small generated canvases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facemtl.geometry.anchors import (AnchorSpec, decode_boxes, decode_points, detections, encode_boxes,
                                      encode_points, five_points, from_canvas, letterbox, priors, run_canvas)
from facemtl.train.detection.data import CanvasFace, encode, focus_probabilities
from facemtl.train.detection.data import KINDS
from facemtl.train.detection.loss import DetectionLoss, best_face_scores
from facemtl.train.detection.targets import IGNORED, NEGATIVE, POSITIVE, build_targets, match_anchors

# A 64-px canvas: 8x8, 4x4 and 2x2 cells, so a model step takes milliseconds.
TINY = AnchorSpec(input_size=64, sizes=((8.0, 14.0), (20.0, 28.0), (40.0, 56.0)))


def test_priors_layout():
    a = priors(TINY)
    assert a.shape == ((64 + 16 + 4) * 2, 4)
    # Level 0, row 0, column 0: both sides at the first cell centre, then column 1.
    assert a[0].tolist() == [3.5, 3.5, 8.0, 8.0] and a[1].tolist() == [3.5, 3.5, 14.0, 14.0]
    assert a[2, :2].tolist() == [11.5, 3.5]
    assert a[128].tolist() == [7.5, 7.5, 20.0, 20.0]  # first stride-16 anchor


def test_box_and_point_coding_round_trip():
    rng = np.random.default_rng(0)
    a = priors(TINY)
    xy = rng.uniform(0, 60, (len(a), 2))
    boxes = np.concatenate([xy, xy + rng.uniform(2, 40, (len(a), 2))], 1)
    np.testing.assert_allclose(decode_boxes(encode_boxes(boxes, a, TINY.variances), a, TINY.variances), boxes,
                               atol=1e-9)
    pts = rng.uniform(-10, 70, (len(a), 5, 2))
    np.testing.assert_allclose(decode_points(encode_points(pts, a, TINY.variances), a, TINY.variances), pts,
                               atol=1e-9)


def test_five_points_from_68():
    lm = np.zeros((68, 2))
    lm[36:42] = [10, 20]
    lm[42:48] = [30, 20]
    lm[30], lm[48], lm[54] = [20, 30], [12, 40], [28, 40]
    assert five_points(lm).tolist() == [[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]]


def test_letterbox_maps_points_both_ways():
    image = np.zeros((100, 200, 3), np.uint8)
    image[40:60, 150:170] = 255  # a square centred at (159.5, 49.5)
    canvas, scale = letterbox(image, 64)
    assert scale == pytest.approx(0.32) and canvas[33:].max() == 0  # bottom band is padding
    ys, xs = np.nonzero(canvas[..., 0] > 128)
    centre = np.array([xs.mean(), ys.mean()])
    np.testing.assert_allclose(from_canvas(centre, scale), [159.5, 49.5], atol=1.6)
    # The run-time canvas: the shorter side cut to the image's 32 rows, rounded up to 32.
    cut, same = letterbox(image, 64, multiple=32)
    assert same == scale and cut.shape == (32, 64, 3) and np.array_equal(cut, canvas[:32])
    a = priors(TINY, cut.shape[:2])
    assert len(a) == sum(len(s) * (32 // st) * (64 // st) for st, s in zip(TINY.strides, TINY.sizes))
    assert a[:, 1].max() < 32 and a[:, 0].max() > 32
    # A small image is not enlarged beyond its own side rounded up to 32.
    small, one = run_canvas(image[:50, :100], 320)
    assert small.shape == (64, 128, 3) and one == pytest.approx(1.28)


def test_target_builder_matches_known_box():
    a = priors(TINY)
    k = 128 + 4 * 2 * 1 + 2 * 1  # stride 16, row 1, column 1, first side (20 px)
    box = np.r_[a[k, :2] - 10, a[k, :2] + 10]
    pts = np.full((1, 5, 2), np.nan)
    t = build_targets(a, TINY, box[None], pts, np.array([[30.0, 0, 0]]))
    assert t["label"][k] == POSITIVE and t["face"][k] == 0
    np.testing.assert_allclose(t["box"][k], 0, atol=1e-9)  # the anchor is the box: zero code
    assert t["pose_mask"][k] == 1 and t["pose"][k].tolist() == [30, 0, 0]
    assert t["points_mask"].sum() == 0  # unknown points are masked, not zero targets
    assert t["label"][0] == NEGATIVE  # the top-left 8-px anchor does not touch it
    # The same box, ignored: no positive, and its overlapping anchors are not background either.
    label, _ = match_anchors(a, box[None], ignore=np.array([True]))
    assert label[k] == IGNORED and not (label == POSITIVE).any()


def test_every_face_gets_an_anchor_even_between_sizes():
    a = priors(TINY)
    box = np.array([[30.0, 30.0, 34.0, 37.0]])  # 4x7 px: smaller than every anchor
    label, face = match_anchors(a, box)
    assert (label == POSITIVE).sum() == 1 and face[label == POSITIVE][0] == 0
    label, _ = match_anchors(a, np.array([[200.0, 200, 230, 230]]))  # off the canvas: no anchor
    assert not (label == POSITIVE).any()


def test_detections_keep_nested_faces_and_drop_duplicates():
    a = np.array([[50, 50, 40, 40], [51, 50, 40, 40], [38, 38, 10, 10]], float)
    scores = np.array([0.9, 0.8, 0.7])
    found = detections(scores, np.zeros((3, 4)), np.zeros((3, 5, 2)), a, TINY, 0.5, 0.4)
    assert found["index"].tolist() == [0, 2]  # 1 duplicates 0; 2 sits inside 0's box but is a face
    assert detections(scores, np.zeros((3, 4)), np.zeros((3, 5, 2)), a, TINY, 0.95)["boxes"].shape == (0, 4)


def _canvas(rng: np.random.Generator, n_faces: int) -> tuple[np.ndarray, list[CanvasFace]]:
    """A 64-px canvas with bright 'faces' (discs with two dark eyes) on a dark noisy background."""
    import cv2

    canvas = rng.integers(0, 60, (64, 64, 3)).astype(np.uint8)
    faces = []
    for _ in range(n_faces):
        r = int(rng.integers(6, 14))
        cx, cy = (int(v) for v in rng.integers(r, 64 - r, 2))
        cv2.circle(canvas, (cx, cy), r, (200, 210, 220), -1)
        eyes = np.array([[cx - r / 2.5, cy - r / 4], [cx + r / 2.5, cy - r / 4]])
        for e in eyes:
            cv2.circle(canvas, (int(e[0]), int(e[1])), max(1, r // 5), (20, 20, 20), -1)
        pts = np.r_[eyes, [[cx, cy], [cx - r / 3, cy + r / 2], [cx + r / 3, cy + r / 2]]]
        faces.append(CanvasFace(box=np.array([cx - r, cy - r, cx + r, cy + r], float), points=pts,
                                pose=np.zeros(3), kinds={"small"} if r < 9 else set()))
    return canvas, faces


def _tiny_model():
    from facemtl.models import create_model

    torch.manual_seed(0)
    return create_model("mos_mobilenetv2", width=0.25, dim=16, input_size=64, sizes=TINY.sizes)


def _batch(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    anchors = priors(TINY)
    examples = [encode(*_canvas(rng, 1 + i % 2), TINY, anchors) for i in range(n)]
    return {k: torch.from_numpy(np.stack([e[k] for e in examples])) for k in examples[0]}


def test_training_steps_are_finite_and_reduce_the_loss():
    torch.set_num_threads(1)
    model, criterion = _tiny_model(), DetectionLoss(weighting="fixed")
    batch = _batch(6)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        total, parts = criterion(model(batch["image"]), batch)
        assert torch.isfinite(total) and set(parts) == {"score", "box", "points", "pose"}
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(float(total.detach()))
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])


def test_frozen_stride_keeps_the_early_backbone_and_the_state_dict_layout():
    from facemtl.models import create_model

    torch.manual_seed(0)
    options = dict(width=0.25, dim=16, input_size=64, sizes=TINY.sizes)
    model = create_model("mos_mobilenetv2", frozen_stride=8, **options)
    assert model.state_dict().keys() == create_model("mos_mobilenetv2", **options).state_dict().keys()
    weights = model.backbone.state_dict()
    early = {k: v.clone() for k, v in weights.items() if k.startswith(("stem.", "stages.0.", "stages.1."))}
    late = {k: v.clone() for k, v in weights.items() if k.startswith("stages.2.")}
    assert early and late
    criterion, batch = DetectionLoss(weighting="fixed"), _batch(4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(2):
        total, _ = criterion(model(batch["image"]), batch)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    now = model.backbone.state_dict()
    assert all(torch.equal(now[k], v) for k, v in early.items())  # weights and batch-norm statistics
    assert not all(torch.equal(now[k], v) for k, v in late.items())


def test_distillation_teaches_a_narrowed_detector_its_teachers_outputs():
    """A detector narrowed from a trained one (``hidden``, ``init``) learns the teacher's features
    and outputs (config ``distill``): the losses are zero against itself, positive for the narrowed
    student, and fall with training; the student may reuse the teacher's stride-8 feature only while
    its frozen layers hold the teacher's weights."""
    from facemtl.models import create_model
    from facemtl.train.checkpoint import initialise
    from facemtl.train.detection.loss import distillation_losses
    from facemtl.train.detection.trainer import _same_frozen_layers

    torch.set_num_threads(1)
    torch.manual_seed(0)
    options = dict(dim=16, input_size=64, sizes=TINY.sizes, frozen_stride=8)
    teacher = create_model("mos_efficientnet_lite0", **options).eval()
    student = create_model("mos_efficientnet_lite0", hidden=[1, 1, 1, 0.5, 0.5, 0.5, 0.5], **options)
    initialise({"model": teacher.state_dict()}, student, torch.nn.Module())
    assert _same_frozen_layers(student, teacher, 8)
    image = _batch(4)["image"]
    with torch.no_grad():
        t_feats = teacher.features(image)
        t_out = teacher.from_features(t_feats)
    assert all(float(v) < 1e-6 for v in distillation_losses(t_feats, t_out, t_feats, t_out).values())
    optimizer = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=2e-3)
    totals = []
    student.train()
    for _ in range(15):
        backbone = student.backbone
        feats = [t_feats[0], *backbone.blocks_from(t_feats[0], backbone._taps[1] + 1)]
        parts = distillation_losses(feats, student.from_features(feats), t_feats, t_out)
        total = sum(parts.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(float(total.detach()))
    assert totals[0] > 0.1 and totals[-1] < 0.5 * totals[0]
    with torch.no_grad():
        student.backbone._conv_stem.weight.mul_(1.01)
    assert not _same_frozen_layers(student, teacher, 8)


def test_stride8_distillation_teaches_a_patch_stem_the_teachers_feature():
    """A detector whose stem is replaced (``stem="patch4"``, ``trained_stride=8``) learns the
    teacher's stride-8 feature (config ``distill: {stride: 8}``): zero against the teacher itself,
    about 1 for the untrained stem, falling with training, and nothing past the stem changes."""
    from facemtl.models import create_model
    from facemtl.train.checkpoint import initialise
    from facemtl.train.detection.loss import stride8_distillation

    torch.set_num_threads(1)
    torch.manual_seed(0)
    options = dict(dim=16, input_size=64, sizes=TINY.sizes)
    teacher = create_model("mos_efficientnet_lite0", **options).eval()
    student = create_model("mos_efficientnet_lite0", stem="patch4", trained_stride=8, **options)
    initialise({"model": teacher.state_dict()}, student, torch.nn.Module())
    image = _batch(8)["image"]
    assert float(stride8_distillation(teacher, teacher, image).detach()) < 1e-9
    heads = student.heads[0].score.weight.clone()
    optimizer = torch.optim.Adam([p for p in student.parameters() if p.requires_grad], lr=3e-3)
    student.train()
    losses = []
    for _ in range(30):
        loss = stride8_distillation(student, teacher, image)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[0] > 0.5 and losses[-1] < 0.6 * losses[0]
    assert torch.equal(student.heads[0].score.weight, heads)


def test_uncertainty_weighting_has_a_learned_weight_per_task():
    criterion = DetectionLoss()
    total, _ = criterion(_tiny_model()(_batch(2)["image"]), _batch(2))
    total.backward()
    assert set(criterion.log_vars) == {"score", "box", "points", "pose"}
    assert all(p.grad is not None for p in criterion.log_vars.values())


def test_miss_statistics_follow_the_missed_kind():
    criterion = DetectionLoss(momentum=0.0)
    face = torch.tensor([[0, 0, 1, -1]])
    kinds = torch.zeros(1, 16, len(KINDS))
    kinds[0, 0, KINDS.index("small")] = 1  # face 0 small, face 1 dark
    kinds[0, 1, KINDS.index("dark")] = 1
    valid = torch.zeros(1, 16)
    valid[0, :2] = 1
    logits = torch.tensor([[-5.0, -4.0, 5.0, 0.0]])  # face 0 missed, face 1 found
    best = best_face_scores(torch.sigmoid(logits), face, 16)[0, :3]
    np.testing.assert_allclose(best.numpy(), [torch.sigmoid(torch.tensor(-4.0)), torch.sigmoid(torch.tensor(5.0)), 0])
    criterion.update_misses(logits, {"face": face, "face_kinds": kinds, "face_valid": valid})
    miss = dict(zip(KINDS + ("all",), criterion.miss.tolist()))
    assert miss["small"] == 1 and miss["dark"] == 0 and miss["all"] == 0.5
    assert miss["turned"] == 0.5  # no turned face in the batch: unchanged
    p = focus_probabilities(criterion.miss.numpy())
    assert p.sum() == pytest.approx(1) and p[1 + KINDS.index("small")] > p[1 + KINDS.index("dark")]


def test_composite_source_pastes_faces_with_their_kinds(monkeypatch):
    from facemtl.data.sample import Sample
    from facemtl.train.detection import data

    monkeypatch.setattr(data, "background", lambda rng, size: np.full((size, size, 3), 90, np.uint8))
    rng = np.random.default_rng(0)
    canvas, faces = _canvas(rng, 1)
    lm = np.zeros((68, 2))
    lm[:, 0], lm[:, 1] = np.linspace(20, 44, 68), np.tile(np.linspace(20, 44, 17), 4)  # a 24-px landmark box
    lm[30] = [32, 32]
    source = data.CompositeSource([Sample("gen", image=canvas, landmarks=lm)], 64, max_faces=1, p_photo=0.0,
                                  min_side=12, max_side=20)
    image, faces = source.example(np.random.default_rng(1), "dark")
    assert len(faces) == 1 and "dark" in faces[0].kinds and image.mean() < 90
    b = faces[0].box
    assert 12 <= b[2] - b[0] <= 20.5 and 0 <= b[0] and b[2] <= 64


def test_mosaic_puts_one_face_per_cell_where_its_pixels_are(monkeypatch):
    from facemtl.data.sample import Sample
    from facemtl.train.detection import data

    monkeypatch.setattr(data, "background", lambda rng, size: np.zeros((size, size, 3), np.uint8))
    photo = np.full((100, 100, 3), 40, np.uint8)
    photo[35:65, 35:65] = 250  # the face: bright inside its landmark box
    lm = np.stack(np.meshgrid(np.linspace(35, 64, 17), np.linspace(35, 64, 4)), -1).reshape(-1, 2)[:68]
    source = data.CompositeSource([Sample("gen", image=photo, landmarks=lm)], 96, p_negative=0.0, p_mosaic=1.0)
    for focus, cells in ((None, (2, 3, 4)), ("small", (4, 5, 6))):
        image, faces = source.example(np.random.default_rng(3), focus)
        k = round(len(faces) ** 0.5)
        assert k in cells and len(faces) == k * k
        cell = 96 // k
        corners = sorted((int(f.box[1] // cell), int(f.box[0] // cell)) for f in faces)
        assert corners == [(r, c) for r in range(k) for c in range(k)]  # one face in each cell
        for f in faces:
            x0, y0, x1, y1 = f.box.round().astype(int)
            inner = image[y0 + 1:y1 - 1, x0 + 1:x1 - 1]
            assert inner.size and inner.mean() > 200, "the box must sit on the face's pixels"
            assert ("small" in f.kinds) == (max(f.box[2:] - f.box[:2]) < data.SMALL)


def test_clutter_draws_distractors_on_face_free_canvases_only_when_asked(monkeypatch):
    from facemtl.data.sample import Sample
    from facemtl.train.detection import data

    monkeypatch.setattr(data, "background", lambda rng, size: np.full((size, size, 3), 128, np.uint8))
    lm = np.stack(np.meshgrid(np.linspace(35, 64, 17), np.linspace(35, 64, 4)), -1).reshape(-1, 2)[:68]
    faces = [Sample("gen", image=np.full((100, 100, 3), 40, np.uint8), landmarks=lm)]
    for p_clutter, drawn in ((0.0, False), (1.0, True)):
        source = data.CompositeSource(faces, 96, p_negative=1.0, p_clutter=p_clutter)
        image, found = source.example(np.random.default_rng(5), None)
        assert found == []  # a distractor is never a face
        changed = np.abs(image.astype(int) - 128).max(-1) > 30  # beyond the photometric jitter
        assert changed.any() == drawn
    a = data.clutter(np.zeros((96, 96, 3), np.uint8), np.random.default_rng(1), 4)
    b = data.clutter(np.zeros((96, 96, 3), np.uint8), np.random.default_rng(1), 4)
    assert np.array_equal(a, b) and a.any()


def test_onnx_export_and_torch_free_runtime_match_torch(tmp_path):
    from facemtl.infer.detector import create_detector
    from facemtl.models.export import export_detector_onnx
    from facemtl.train.detection.trainer import detect_torch

    model = _tiny_model().eval()
    with torch.no_grad():  # spread the scores so thresholding and NMS have something to sort
        for head in model.heads:
            head.score.weight.normal_(0, 0.5)
            head.score.bias.zero_()
            head.box.weight.normal_(0, 0.05)
    path = tmp_path / "mos.onnx"
    export_detector_onnx(model, path)
    image = np.random.default_rng(0).integers(0, 255, (50, 120, 3)).astype(np.uint8)  # a 32x64 canvas
    detector = create_detector("mos", model_path=path, score=0.3, threads=1, canvas=64)  # as detect_torch
    got = detector.detect(image)
    want = detect_torch(model, image, score=0.3)
    assert len(got["boxes"]) > 0 and got["boxes"].shape == want["boxes"].shape
    np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-3)
    np.testing.assert_allclose(got["points"], want["points"], atol=1e-3)
    np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-5)
    boxes, scores = detector(image)
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    big = create_detector("mos", model_path=path, score=0.3, min_face=float(np.median(side)), threads=1,
                          canvas=64)(image)[0]
    assert 0 < len(big) < len(boxes) or len(set(side)) == 1
    # A larger canvas: the image is brought to that side (twice the pixels per face here).
    wide = create_detector("mos", model_path=path, score=0.3, threads=1, canvas=128)
    seen = []
    wide.raw = lambda c, raw=wide.raw: seen.append(c.shape) or raw(c)
    wide.detect(image)
    assert seen == [(64, 128, 3)]
    # FaceAnalyzer makes a named MOS detector with its own threads and threshold (None: MOS's 0.5).
    from facemtl.infer.analyzer import FaceAnalyzer

    own = FaceAnalyzer(detector=f"mos:{path}", threads=1, expression_model=False).detector
    lower = FaceAnalyzer(detector=f"mos:{path}", threads=1, score=0.3, canvas=128, expression_model=False).detector
    assert own.score == 0.5 and lower.score == 0.3 and (own.canvas, lower.canvas) == (416, 128)
    assert own.session.get_session_options().intra_op_num_threads == 1


def _detector_configs() -> list[str]:
    """The shipped configs of mos_* models (a new one is checked without being listed here)."""
    from facemtl.train.config import CONFIG_DIR, TrainConfig
    from facemtl.train.detection.trainer import is_detector
    from facemtl.train.superres import read_config

    return [p.stem for p in sorted(CONFIG_DIR.glob("*.yaml"))
            if read_config(p) is None and is_detector(TrainConfig.load(p))]


@pytest.mark.parametrize("name", _detector_configs())
def test_detector_config_loads_with_known_sources(name):
    from facemtl.data.registry import DATASETS
    from facemtl.geometry.anchors import AnchorSpec
    from facemtl.train.config import TrainConfig
    from facemtl.train.detection.trainer import is_detector

    cfg = TrainConfig.load(name)
    assert is_detector(cfg) and AnchorSpec.from_options(cfg.model_options).input_size == cfg.input_size
    for spec in cfg.data:
        assert spec.type in {"scenes", "faces", "lfw"}, spec
        assert spec.type != "faces" or spec.name in DATASETS, spec
    # The 100 held-out helen-train faces stay out of training.
    helen = [s for s in cfg.data if s.root and s.root.endswith("helen-train")]
    assert helen and all(s.options.get("holdout") == "train" for s in helen)


def _write_pts_faces(root, n: int = 3) -> None:
    """``n`` generated 96-px 'photos' with a disc face and 68 points, in the 300-W format."""
    import cv2

    rng = np.random.default_rng(0)
    for i in range(n):
        canvas, faces = _canvas(rng, 1)
        image = cv2.resize(canvas, (96, 96), interpolation=cv2.INTER_LINEAR)
        x1, y1, x2, y2 = faces[0].box * 1.5
        t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
        pts = np.stack([(x1 + x2) / 2 + (x2 - x1) / 2 * np.cos(t), (y1 + y2) / 2 + (y2 - y1) / 2 * np.sin(t)], 1)
        cv2.imwrite(str(root / f"face{i}.jpg"), image)
        lines = "\n".join(f"{x + 1:.2f} {y + 1:.2f}" for x, y in pts)
        (root / f"face{i}.pts").write_text(f"version: 1\nn_points: 68\n{{\n{lines}\n}}\n")


def test_train_detector_runs_exports_and_detects(shared, tmp_path):
    """Two steps of the real loop (sources, feedback sampler, loss, logs, checkpoint), then
    ``facemtl export`` and the runtime on its file."""
    from facemtl.cli import main
    from facemtl.infer.detector import create_detector
    from facemtl.train.config import DataSpec, TrainConfig
    from facemtl.train.detection.trainer import train_detector
    from facemtl.train.log import CsvLog

    faces = tmp_path / "faces"
    faces.mkdir()
    _write_pts_faces(faces)
    cfg = TrainConfig(name="tiny", model="mos_mobilenetv2", input_size=64,
                      model_options={"width": 0.25, "dim": 16, "input_size": 64, "sizes": [list(s) for s in TINY.sizes]},
                      steps=2, epoch_steps=2, batch_size=3, warmup_steps=1, checkpoint_every=1, workers=0, threads=1,
                      log_every=1, augment={"low_res": 0.0, "blur": 0.0},
                      data=[DataSpec(type="faces", name="300w", root=str(faces), options={"max_side": 30})])
    train_detector(cfg, tmp_path / "run", device="cpu")
    rows = CsvLog(tmp_path / "run" / "metrics.csv").read()
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert all(np.isfinite(float(rows[-1][f"loss_{t}"])) for t in ("score", "box", "points"))
    assert 0 <= float(rows[-1]["miss_all"]) <= 1
    onnx = tmp_path / "mos.onnx"
    assert main(["export", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--onnx", str(onnx)]) == 0
    detector = create_detector(f"mos:{onnx}", score=0.0, threads=1)
    boxes, scores = detector(np.zeros((48, 80, 3), np.uint8))
    assert detector.spec == AnchorSpec.from_options(cfg.model_options) and len(boxes) == len(scores) > 0
    # int8: calibrated on canvases of the generated photos, the same outputs and metadata.
    assert main(["export", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--onnx", str(onnx), "--int8",
                 "--calibration", str(faces), "--n-calibration", "2", "--n-check", "1"]) == 0
    int8 = create_detector(f"mos:{tmp_path / 'mos.int8.onnx'}", score=0.0, threads=1)
    assert int8.spec == detector.spec and int8.session.get_modelmeta().custom_metadata_map["facemtl_quantization"]
    raw, raw8 = detector.raw(np.zeros((64, 64, 3), np.uint8)), int8.raw(np.zeros((64, 64, 3), np.uint8))
    assert {k: v.shape for k, v in raw.items()} == {k: v.shape for k, v in raw8.items()}

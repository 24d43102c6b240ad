"""Hopenet (Ruiz et al., "Fine-Grained Head Pose Estimation Without Keypoints", CVPRW 2018).

A backbone (ResNet-50 in the paper), global average pooling and three fully connected layers, one
per angle, each giving logits over 66 bins of 3 deg covering +-99 deg (:data:`HOPENET_BINS`).
The angle is the expectation of the softmax over the bins and its spread is the uncertainty.
Trained with cross-entropy on the bin plus alpha x MSE on the expectation
(:func:`facemtl.losses.hopenet_loss`). ``head="regression"`` is the paper's baseline: the same
network regressing the three angles directly (:func:`facemtl.losses.pose_regression_loss`).
"""

from __future__ import annotations

import torch
from torch import nn

from facemtl.models.heads import HOPENET_BINS, BinPoseHead, InputNorm, decode_outputs, global_pool
from facemtl.models.registry import create_backbone, register_model


class Hopenet(nn.Module):
    def __init__(self, backbone: str = "resnet50", head: str = "bins", **backbone_kw):
        super().__init__()
        if head not in ("bins", "regression"):
            raise ValueError(f"head must be 'bins' or 'regression', not {head!r}")
        self.norm = InputNorm()
        self.backbone = create_backbone(backbone, **backbone_kw)
        c = self.backbone.channels[-1]
        self.head = BinPoseHead(c, HOPENET_BINS) if head == "bins" else nn.Linear(c, 3)
        self.key = "pose_logits" if head == "bins" else "pose"

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """``image``: (N, 3, S, S) BGR 0..255 -> ``pose_logits`` (N, 3, 66) or ``pose`` (N, 3)."""
        return {self.key: self.head(global_pool(self.backbone(self.norm(image))[-1]))}

    def decode(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return decode_outputs(outputs, self.head if isinstance(self.head, BinPoseHead) else None)


@register_model
def hopenet(backbone: str = "resnet50", head: str = "bins", **backbone_kw) -> Hopenet:
    return Hopenet(backbone, head, **backbone_kw)

"""6DRepNet (Hempel et al., "6D Rotation Representation for Unconstrained Head Pose Estimation", ICIP 2022).

A backbone (RepVGG in the paper; any registered backbone here), global average pooling and one
linear layer to the 6D representation, made a rotation matrix by Gram-Schmidt and trained with
the geodesic loss (:func:`facemtl.losses.rotation_loss`). Euler angles are read off the matrix.
"""

from __future__ import annotations

import torch
from torch import nn

from facemtl.models.heads import InputNorm, SixDHead, decode_outputs, global_pool
from facemtl.models.registry import create_backbone, register_model


class SixDRepNet(nn.Module):
    def __init__(self, backbone: str = "resnet18", **backbone_kw):
        super().__init__()
        self.norm = InputNorm()
        self.backbone = create_backbone(backbone, **backbone_kw)
        self.head = SixDHead(self.backbone.channels[-1])

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """``image``: (N, 3, S, S) BGR 0..255 -> ``rot6d`` (N, 6)."""
        return {"rot6d": self.head(global_pool(self.backbone(self.norm(image))[-1]))}

    def decode(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return decode_outputs(outputs)


@register_model
def sixdrepnet(backbone: str = "resnet18", **backbone_kw) -> SixDRepNet:
    return SixDRepNet(backbone, **backbone_kw)

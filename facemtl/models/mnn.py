"""MNN-style multi-task network (Valle, Buenaposada & Baumela, "Multi-task head pose estimation
in-the-wild", TPAMI 2021).

An encoder-decoder of residual blocks with lateral skip connections: pose is read at the
bottleneck (the most global feature), the 68 landmark heatmaps and visibilities at the final
decoder layer (stride 4), and the landmark coordinates are regressed from the heatmaps by
soft-argmax with a learned shape refinement (the paper's final landmark regression step).
An optional expression head on the bottleneck makes it comparable with the product net.
"""

from __future__ import annotations

import torch
from torch import nn

from facemtl.contract import N_EXPRESSIONS, N_LANDMARKS
from facemtl.models.heads import (HOPENET_BINS, BinPoseHead, ClassifierHead, HeatmapVisibilityHead, InputNorm,
                                  LandmarkRefiner, SixDHead, decode_outputs, global_pool, soft_argmax, upsample_to)
from facemtl.models.registry import register_model
from facemtl.models.resnet import BasicBlock, conv_bn, make_stage


class MNN(nn.Module):
    """Encoder: stem (stride 2) then ``len(widths)`` stages of residual blocks, each halving the
    resolution (strides 4 .. 32 for four stages). Decoder: back up to stride 4, each level adding a
    1x1 lateral projection of the encoder stage at that resolution, then residual blocks."""

    def __init__(self, base: int = 32, widths: tuple[int, ...] = (2, 4, 8, 8), depth: int = 2,
                 pose_bins: bool = True, rotation_6d: bool = False, visibility: bool = True,
                 expression: bool = False):
        super().__init__()
        self.norm = InputNorm()
        self.stem = conv_bn(3, base, 3, 2)
        chans = [base * w for w in widths]
        self.encoder = nn.ModuleList()
        cin = base
        for c in chans:
            self.encoder.append(make_stage(BasicBlock, cin, c, depth, 2))
            cin = c
        dec = chans[0]
        # Decoder levels from the bottleneck's resolution up to stride 4; every level is `dec` wide.
        self.bottleneck_proj = conv_bn(chans[-1], dec, 1)
        self.laterals = nn.ModuleList(conv_bn(c, dec, 1) for c in reversed(chans[:-1]))
        self.decoder = nn.ModuleList(make_stage(BasicBlock, dec, dec, 1, 1) for _ in chans[:-1])
        g = chans[-1]
        self.pose_head = BinPoseHead(g, HOPENET_BINS) if pose_bins else None
        self.rot_head = SixDHead(g) if rotation_6d else None
        self.heatmap = nn.Conv2d(dec, N_LANDMARKS, 1)
        self.refiner = LandmarkRefiner()
        self.visibility_head = HeatmapVisibilityHead(dec, g) if visibility else None
        self.expression_head = ClassifierHead(g, N_EXPRESSIONS) if expression else None

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """``image``: (N, 3, S, S) BGR 0..255 -> raw outputs (see heads.py)."""
        x = self.stem(self.norm(image))
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        g = global_pool(x)
        out: dict[str, torch.Tensor] = {}
        if self.pose_head is not None:
            out["pose_logits"] = self.pose_head(g)
        if self.rot_head is not None:
            out["rot6d"] = self.rot_head(g)
        if self.expression_head is not None:
            out["expression_logits"] = self.expression_head(g)
        d = self.bottleneck_proj(x)
        for skip, lateral, block in zip(reversed(skips[:-1]), self.laterals, self.decoder):
            y = lateral(skip)
            d = block(y + upsample_to(d, y))
        hm = self.heatmap(d)
        out["heatmaps"] = hm
        out["landmarks"] = self.refiner(soft_argmax(hm))
        if self.visibility_head is not None:
            out["visibility_logits"] = self.visibility_head(d, hm, g)
        return out

    def decode(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return decode_outputs(outputs, self.pose_head)


@register_model
def mnn(**kw) -> MNN:
    return MNN(**kw)

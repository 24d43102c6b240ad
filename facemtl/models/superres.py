"""Face super-resolution networks (Super-FAN, Bulat & Tzimiropoulos 2018, in small): a generator,
a patch discriminator, and the frozen heatmap landmark critic.

* :class:`SRGenerator` (``sr_generator``): BGR 0..255 (N, 3, h, w) -> (N, 3, s h, s w), s = 4 or 8.
  Residual blocks at the low resolution (where convolutions are cheap), then pixel shuffles. Its output is bicubic upsampling plus a
  learned residual whose last layer starts at zero: an untrained generator *is* bicubic, so a short
  training run can only add to it. Fully convolutional: any input size.
* :class:`PatchDiscriminator` (``sr_discriminator``): a logit per overlapping patch (PatchGAN),
  for the adversarial term.
* The landmark critic is one of our multi-task nets with a heatmap landmark head (the shipped
  configs use the main model's committed weights, ``checkpoints/default-*.pt``), loaded frozen by
  :func:`facemtl.train.superres.load_critic`.

:func:`facemtl.models.export.export_generator` writes the generator as ONNX for the torch-free runtime
(:mod:`facemtl.infer.superres`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from facemtl.models.registry import register_model

SCALES = (4, 8)


class ResidualBlock(nn.Module):
    """conv-ReLU-conv with an identity skip (EDSR: no batch norm, which hurts super-resolution)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRGenerator(nn.Module):
    def __init__(self, scale: int = 4, channels: int = 48, blocks: int = 8):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, not {scale}")
        self.scale = scale
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlock(channels) for _ in range(blocks)],
                                  nn.Conv2d(channels, channels, 3, padding=1))
        # x8 first doubles the features' resolution; the last x4 comes from one convolution to 48
        # channels shuffled into 4 x 4 pixels (ESPCN), so nearly all the compute stays at the input size.
        ups: list[nn.Module] = []
        for _ in range(int(math.log2(scale)) - 2):
            ups += [nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2), nn.ReLU(inplace=True)]
        self.up = nn.Sequential(*ups)
        self.tail = nn.Conv2d(channels, 3 * 16, 3, padding=1)
        self.shuffle = nn.PixelShuffle(4)
        nn.init.zeros_(self.tail.weight)  # start as plain bicubic upsampling
        nn.init.zeros_(self.tail.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) BGR 0..255 -> (N, 3, scale h, scale w) BGR, about 0..255 (not clipped)."""
        base = F.interpolate(image, scale_factor=self.scale, mode="bicubic", align_corners=False)
        f = self.head(image / 127.5 - 1.0)
        f = f + self.body(f)
        return base + 127.5 * self.shuffle(self.tail(self.up(f)))


class PatchDiscriminator(nn.Module):
    """Strided conv + LeakyReLU stages to one real/fake logit per patch: (N, 3, H, W) -> (N, 1, H/8, W/8)."""

    def __init__(self, channels: int = 32, stages: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for k in range(stages):
            cout = channels * 2 ** k
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image / 127.5 - 1.0)


@register_model
def sr_generator(scale: int = 4, channels: int = 48, blocks: int = 8) -> SRGenerator:
    return SRGenerator(scale, channels, blocks)


@register_model
def sr_discriminator(channels: int = 32, stages: int = 3) -> PatchDiscriminator:
    return PatchDiscriminator(channels, stages)

"""ResNet-18/34/50 (He et al. 2016) as feature extractors, laid out like torchvision's.

A backbone's ``forward`` returns the outputs of its four stages, at strides 4, 8, 16 and 32,
and ``channels`` gives their widths; task heads pick the stages they need.
"""

from __future__ import annotations

from typing import Type, Union

import torch
from torch import nn

from facemtl.models.registry import register_backbone


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True) -> nn.Sequential:
    """Conv (no bias) + BatchNorm (+ ReLU), 'same' padding for odd kernels."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(conv_bn(cin, width, 3, stride), conv_bn(width, cout, 3, relu=False))
        self.shortcut = conv_bn(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU(inplace=True)
        # Zero-init the last BN so every block starts as the identity (Goyal et al. 2017):
        # trains faster from scratch, which is how facemtl trains (no downloadable weights).
        nn.init.zeros_(self.body[-1][1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride, as torchvision's "ResNet v1.5"), 1x1 expand x4."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(conv_bn(cin, width, 1), conv_bn(width, width, 3, stride),
                                  conv_bn(width, cout, 1, relu=False))
        self.shortcut = conv_bn(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU(inplace=True)
        nn.init.zeros_(self.body[-1][1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


Block = Type[Union[BasicBlock, Bottleneck]]


def make_stage(block: Block, cin: int, width: int, depth: int, stride: int) -> nn.Sequential:
    """``depth`` blocks, the first one carrying ``stride``."""
    blocks = [block(cin, width, stride)]
    blocks += [block(width * block.expansion, width) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)


_STRIDES = (4, 8, 16, 32)  # of the four features a backbone returns


class StagedBackbone(nn.Module):
    """The backbone interface: subclasses set ``stem``, ``stages`` (an ``nn.ModuleList``) and
    ``channels``; ``forward`` returns the output of every stage."""

    stem: nn.Module
    stages: nn.ModuleList
    channels: tuple[int, ...]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, C, H, W) -> features at strides 4, 8, 16, 32."""
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def layers_to(self, stride: int) -> list[nn.Module]:
        """The modules that compute the feature at ``stride`` (4, 8, 16 or 32) from the image."""
        return [self.stem, *self.stages[:_STRIDES.index(stride) + 1]]


class ResNet(StagedBackbone):
    """7x7/2 stem + 3x3/2 max-pool, then four stages of ``block`` at widths 64..512."""

    def __init__(self, block: Block, depths: tuple[int, int, int, int], in_chans: int = 3):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(in_chans, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], 64
        for i, (width, depth) in enumerate(zip((64, 128, 256, 512), depths)):
            stages.append(make_stage(block, cin, width, depth, 1 if i == 0 else 2))
            cin = width * block.expansion
        self.stages = nn.ModuleList(stages)
        self.channels = tuple(w * block.expansion for w in (64, 128, 256, 512))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


@register_backbone
def resnet18(**kw) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), **kw)


@register_backbone
def resnet34(**kw) -> ResNet:
    return ResNet(BasicBlock, (3, 4, 6, 3), **kw)


@register_backbone
def resnet50(**kw) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), **kw)

"""MobileNetV2 (Sandler et al. 2018) and MobileNetV3-small/large (Howard et al. 2019) backbones.

Same interface as :mod:`facemtl.models.resnet`: ``forward`` returns the features at strides 4, 8,
16 and 32 and ``channels`` their widths. The stride-32 output is taken after the final 1x1
expansion conv (1280 for V2, 576/960 for V3), the features the papers pool for their classifiers.
``width`` scales every channel count, rounded to a multiple of 8 as in the papers.
"""

from __future__ import annotations

import torch
from torch import nn

from facemtl.models.registry import register_backbone
from facemtl.models.resnet import StagedBackbone


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round ``v`` to the nearest multiple of ``divisor``, never more than 10 % below it (TF's rule)."""
    out = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * v else out


def conv_bn_act(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                act: type[nn.Module] | None = nn.ReLU6) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Channel attention: global pool -> 1x1 reduce -> ReLU -> 1x1 expand -> hard-sigmoid gate."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)
        self.relu = nn.ReLU(inplace=True)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.relu(self.reduce(s))))


class InvertedResidual(nn.Module):
    """1x1 expand -> kxk depthwise (stride) -> [SE] -> 1x1 linear project; residual when shapes match."""

    def __init__(self, cin: int, hidden: int, cout: int, kernel: int, stride: int,
                 act: type[nn.Module], se: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        if hidden != cin:
            layers.append(conv_bn_act(cin, hidden, 1, act=act))
        layers.append(conv_bn_act(hidden, hidden, kernel, stride, groups=hidden, act=act))
        if se:
            layers.append(SqueezeExcite(hidden, make_divisible(hidden / 4)))
        layers.append(conv_bn_act(hidden, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class MobileNet(StagedBackbone):
    """A stem conv, a list of inverted-residual blocks and a final 1x1 conv, split by stride.

    ``blocks`` rows are ``(kernel, hidden, out, se, act, stride)`` with unscaled channel counts.
    """

    def __init__(self, stem: int, blocks: list[tuple], last: int, stem_act: type[nn.Module],
                 last_act: type[nn.Module], width: float = 1.0, in_chans: int = 3, scale_last: bool = True):
        super().__init__()
        c = make_divisible(stem * width)
        self.stem = conv_bn_act(in_chans, c, 3, 2, act=stem_act)
        stages: list[list[nn.Module]] = [[] for _ in range(4)]
        stride = 2
        for kernel, hidden, out, se, act, s in blocks:
            stride *= s
            cout = make_divisible(out * width)
            stages[max(0, stride.bit_length() - 3)].append(
                InvertedResidual(c, make_divisible(hidden * width), cout, kernel, s, act, se))
            c = cout
        last_c = make_divisible(last * width) if scale_last else last
        stages[3].append(conv_bn_act(c, last_c, 1, act=last_act))
        if stride != 32 or not all(stages):
            raise ValueError("block table must reach stride 32 through strides 4, 8, 16")
        self.stages = nn.ModuleList(nn.Sequential(*s) for s in stages)
        # Each stage's width is the output channel count of its last block.
        self.channels = tuple(_out_channels(s) for s in self.stages)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


def _out_channels(stage: nn.Module) -> int:
    return [m for m in stage.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features


RE, HS = nn.ReLU, nn.Hardswish

# MobileNetV2 Table 2 rows (expansion t, channels c, repeats n, stride s), expanded to blocks.
_V2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _v2_blocks() -> list[tuple]:
    blocks, cin = [], 32
    for t, c, n, s in _V2:
        for i in range(n):
            blocks.append((3, cin * t, c, False, nn.ReLU6, s if i == 0 else 1))
            cin = c
    return blocks


# MobileNetV3 Tables 1 and 2: (kernel, expansion size, out, SE, activation, stride).
_V3_LARGE = [
    (3, 16, 16, False, RE, 1), (3, 64, 24, False, RE, 2), (3, 72, 24, False, RE, 1),
    (5, 72, 40, True, RE, 2), (5, 120, 40, True, RE, 1), (5, 120, 40, True, RE, 1),
    (3, 240, 80, False, HS, 2), (3, 200, 80, False, HS, 1), (3, 184, 80, False, HS, 1),
    (3, 184, 80, False, HS, 1), (3, 480, 112, True, HS, 1), (3, 672, 112, True, HS, 1),
    (5, 672, 160, True, HS, 2), (5, 960, 160, True, HS, 1), (5, 960, 160, True, HS, 1),
]
_V3_SMALL = [
    (3, 16, 16, True, RE, 2), (3, 72, 24, False, RE, 2), (3, 88, 24, False, RE, 1),
    (5, 96, 40, True, HS, 2), (5, 240, 40, True, HS, 1), (5, 240, 40, True, HS, 1),
    (5, 120, 48, True, HS, 1), (5, 144, 48, True, HS, 1), (5, 288, 96, True, HS, 2),
    (5, 576, 96, True, HS, 1), (5, 576, 96, True, HS, 1),
]


@register_backbone
def mobilenetv2(width: float = 1.0, **kw) -> MobileNet:
    # The paper keeps the last conv at 1280 for width < 1 ("we do not apply it to the last layer").
    return MobileNet(32, _v2_blocks(), max(1280, make_divisible(1280 * width)), nn.ReLU6, nn.ReLU6,
                     width, scale_last=False, **kw)


@register_backbone
def mobilenetv3_large(width: float = 1.0, **kw) -> MobileNet:
    return MobileNet(16, _V3_LARGE, 960, HS, HS, width, **kw)


@register_backbone
def mobilenetv3_small(width: float = 1.0, **kw) -> MobileNet:
    return MobileNet(16, _V3_SMALL, 576, HS, HS, width, **kw)

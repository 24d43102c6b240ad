"""Parts shared by the task models: input normalisation, pose / rotation / landmark / visibility /
expression heads, and the decoding of raw outputs into the ONNX contract (docs/model-format.md).

Raw output names (what ``model(x)`` returns, what the losses read):

=====================  ==============  ==============================================
key                    shape           meaning
=====================  ==============  ==============================================
``pose_logits``        (N, 3, B)       yaw, pitch, roll bin logits (:class:`PoseBins`)
``pose``               (N, 3)          directly regressed angles, degrees (baselines)
``rot6d``              (N, 6)          6D rotation (first two columns of R, unnormalised)
``heatmaps``           (N, 68, h, w)   landmark heatmap logits (spatial softmax = distribution)
``landmarks``          (N, 68, 2)      normalised crop coordinates ``(p_crop + 0.5) / S``
``visibility_logits``  (N, 68)         visibility logits
``expression_logits``  (N, 7)          logits over ``EXPRESSIONS``
=====================  ==============  ==============================================
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facemtl.contract import N_LANDMARKS
from facemtl.geometry import rotations_torch as rt


# ImageNet statistics in BGR order: the model's input is OpenCV's BGR 0..255.
_BGR_MEAN = (0.406 * 255, 0.456 * 255, 0.485 * 255)
_BGR_STD = (0.225 * 255, 0.224 * 255, 0.229 * 255)


class InputNorm(nn.Module):
    """BGR 0..255 -> per-channel standardised. Every task model starts with it, so training and the
    exported graph see the same input (the contract's BGR 0..255) and cannot disagree."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(_BGR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("inv_std", 1 / torch.tensor(_BGR_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inv_std


@dataclass(frozen=True)
class PoseBins:
    """Hopenet's angle bins: ``count`` bins of ``width`` degrees starting at ``start``.

    Bin ``k`` covers ``[start + k w, start + (k+1) w)``; labels are Hopenet's
    ``np.digitize(angle, range(-99, 102, 3)) - 1``, clamped to the valid bins (Hopenet drops
    samples beyond +-99 deg instead; clamping keeps them, and the expectation loss still sees the
    true angle).

    Decoding uses the bin **centres** ``start + (k + 0.5) w`` (-97.5, -94.5, ..., 97.5). Hopenet's
    code decodes with ``sum(softmax * idx) * 3 - 99``, the bins' *lower edges*: a distribution
    concentrated in the right bin then reads 1.5 deg low, a bias only its MSE term can train away.
    With centres, cross-entropy and the expectation agree.
    """

    start: float = -99.0
    width: float = 3.0
    count: int = 66

    def centres(self, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self.start + (torch.arange(self.count, device=device, dtype=dtype) + 0.5) * self.width

    def labels(self, angles: torch.Tensor) -> torch.Tensor:
        """Bin index of each angle (degrees), int64, clamped to ``[0, count - 1]``."""
        k = torch.floor((angles - self.start) / self.width)
        return k.clamp(0, self.count - 1).long()


HOPENET_BINS = PoseBins()


def bin_expectation(logits: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation (degrees) of the softmax distribution over bin centres.

    (..., B) logits, (B,) centres -> ((...), (...)). The std is the spread of the predicted
    distribution (0 for a one-hot), not counting the width of a bin itself.
    """
    p = torch.softmax(logits, dim=-1)
    mean = (p * centres).sum(-1)
    var = (p * (centres - mean.unsqueeze(-1)) ** 2).sum(-1)
    return mean, torch.sqrt(var.clamp_min(0))


class BinPoseHead(nn.Module):
    """Linear layer to ``3 x count`` logits: Hopenet's three fully connected heads (yaw, pitch, roll)
    stacked into one matrix, which is the same function."""

    def __init__(self, in_features: int, bins: PoseBins = HOPENET_BINS):
        super().__init__()
        self.bins = bins
        self.fc = nn.Linear(in_features, 3 * bins.count)
        # Per-angle factor from the bin spread to the error's standard deviation, measured on a
        # held-out set at export (facemtl.tools.export.calibrate_pose_std); 1 until then.
        self.register_buffer("std_scale", torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x).view(-1, 3, self.bins.count)

    def read(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, B) logits -> angles (N, 3) and their uncertainty (N, 3), degrees: the bin
        expectation and the bin spread times :attr:`std_scale`."""
        mean, spread = bin_expectation(logits, self.bins.centres(logits.device, logits.dtype))
        return mean, spread * self.std_scale.to(spread.dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Weights saved before the calibration existed read as uncalibrated (factor 1).
        state_dict.setdefault(prefix + "std_scale", torch.ones(3))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class SixDHead(nn.Module):
    """Linear layer to a 6D rotation (6DRepNet, Zhou et al. 2019); starts at the identity rotation."""

    def __init__(self, in_features: int):
        super().__init__()
        self.fc = nn.Linear(in_features, 6)
        nn.init.normal_(self.fc.weight, std=1e-3)
        with torch.no_grad():
            self.fc.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1, 0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def separable_block(cin: int, cout: int) -> nn.Sequential:
    """3x3 depthwise + 1x1 pointwise, each with BN + ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def upsample_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour resize of ``x`` to ``ref``'s spatial size (odd sizes, e.g. 7 -> 14 at 112 px)."""
    return F.interpolate(x, size=ref.shape[-2:], mode="nearest")


class HeatmapDecoder(nn.Module):
    """Light top-down decoder (FPN-like) from the stride-16/8/4 features to stride 4.

    Each level: 1x1 lateral conv to ``dim``, add the upsampled coarser level, a separable 3x3 block.
    Returns the stride-4 features ``(N, dim, S/4, S/4)``.
    """

    def __init__(self, channels: tuple[int, int, int], dim: int):
        super().__init__()
        self.laterals = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(inplace=True))
            for c in channels)
        self.smooth = nn.ModuleList(separable_block(dim, dim) for _ in channels)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """``feats`` = [stride 4, stride 8, stride 16] features."""
        x = None
        for f, lateral, smooth in zip(reversed(feats), reversed(self.laterals), reversed(self.smooth)):
            y = lateral(f)
            x = smooth(y if x is None else y + upsample_to(x, y))
        return x


def heatmap_grid(h: int, w: int, device: torch.device | None = None,
                 dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised crop coordinates of the heatmap cell centres: ``(j + 0.5) / w`` and ``(i + 0.5) / h``.

    A heatmap covers the whole crop, so with the contract's ``(p_crop + 0.5) / S`` coordinates its
    cell centres sit at these values whatever the stride.
    """
    xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) / w
    ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) / h
    return xs, ys


def soft_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """Expected cell-centre position under the spatial softmax of each heatmap (integral regression,
    Sun et al. 2018): (N, K, h, w) logits -> (N, K, 2) normalised (x, y), sub-cell precise."""
    n, k, h, w = heatmaps.shape
    p = torch.softmax(heatmaps.flatten(2), dim=-1).view(n, k, h, w)
    xs, ys = heatmap_grid(h, w, heatmaps.device, heatmaps.dtype)
    x = (p.sum(2) * xs).sum(-1)
    y = (p.sum(3) * ys).sum(-1)
    return torch.stack([x, y], dim=-1)


class LandmarkRefiner(nn.Module):
    """Learned correction of the soft-argmax shape: an MLP on all 68 points adds an offset per point.

    It sees the whole shape, so it can pull implausible points back (a shape prior) and undo
    soft-argmax's pull toward the centre of wide heatmaps. The last layer starts at zero, so
    training begins from plain soft-argmax.
    """

    def __init__(self, n_points: int = N_LANDMARKS, hidden: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * n_points, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, 2 * n_points))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        # Centre the input so the MLP works on offsets from the crop centre.
        return points + self.mlp((points - 0.5).flatten(1)).view_as(points)


class HeatmapVisibilityHead(nn.Module):
    """Visibility logit per landmark from the decoder features under its heatmap, plus global context.

    Per landmark, the features are pooled with the landmark's own spatial softmax as weights
    (what the network sees *at* the point: skin or occluder) and scored by a per-landmark linear
    layer; a linear layer on the pooled global feature adds what depends on the whole head (a
    contour point self-occludes when the head turns).
    """

    def __init__(self, dim: int, global_dim: int, n_points: int = N_LANDMARKS):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_points, dim))
        self.bias = nn.Parameter(torch.zeros(n_points))
        self.global_fc = nn.Linear(global_dim, n_points)
        nn.init.normal_(self.weight, std=dim ** -0.5)

    def forward(self, feats: torch.Tensor, heatmaps: torch.Tensor, global_feat: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(heatmaps.flatten(2), dim=-1)  # (N, K, hw)
        pooled = torch.matmul(p, feats.flatten(2).transpose(1, 2))  # (N, K, dim)
        return (pooled * self.weight).sum(-1) + self.bias + self.global_fc(global_feat)


class ClassifierHead(nn.Module):
    """Dropout + linear layer on a pooled feature (expression, direct landmark regression...)."""

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.2):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(x))


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C) mean."""
    return x.mean((2, 3))


def decode_outputs(outputs: dict[str, torch.Tensor], pose_head: BinPoseHead | None = None) -> dict[str, torch.Tensor]:
    """Raw outputs -> the ONNX contract's outputs (only those the raw outputs allow).

    * ``pose``, ``pose_std``: from ``pose_logits`` by the model's ``pose_head``
      (:meth:`BinPoseHead.read`: its bins and calibration); else the regressed ``pose``; else the
      Euler angles of the 6D rotation.
    * ``rotation``: from ``rot6d`` when present (so a model with both heads reports each head's
      own answer), else built from ``pose``.
    * ``visibility`` and ``expression`` become probabilities.
    """
    out: dict[str, torch.Tensor] = {}
    rotation = rt.sixd_to_matrix(outputs["rot6d"]) if "rot6d" in outputs else None
    if "pose_logits" in outputs:
        if pose_head is None:
            raise ValueError("decode_outputs: pose_logits need the BinPoseHead that made them")
        out["pose"], out["pose_std"] = pose_head.read(outputs["pose_logits"])
    elif "pose" in outputs:
        out["pose"] = outputs["pose"]
    elif rotation is not None:
        out["pose"] = rt.matrix_to_euler(rotation)
    if rotation is None and "pose" in out:
        rotation = rt.euler_to_matrix(out["pose"])
    if rotation is not None:
        out["rotation"] = rotation
    if "landmarks" in outputs:
        out["landmarks"] = outputs["landmarks"]
    if "visibility_logits" in outputs:
        out["visibility"] = torch.sigmoid(outputs["visibility_logits"])
    if "expression_logits" in outputs:
        out["expression"] = torch.softmax(outputs["expression_logits"], dim=-1)
    return out

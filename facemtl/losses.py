"""Training losses, each masked per label so one batch can mix datasets with different labels.

Every loss takes a ``mask`` (1 = labelled, 0 = missing) and averages over the labelled entries
only; masked entries contribute exactly zero loss and zero gradient (their targets may be
anything, NaN included). A batch with no label for a loss gives 0, still connected to the graph
(so DDP sees a gradient, zero, for every parameter).

Targets follow :mod:`facemtl.train.data`: ``pose`` (N, 3) degrees, ``landmarks`` (N, 68, 2)
normalised crop coordinates, ``visibility`` (N, 68) 0/1, ``expression`` (N,) class index, each
with its ``*_mask``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from facemtl.geometry import rotations_torch as rt
from facemtl.models.heads import HOPENET_BINS, PoseBins, bin_expectation, heatmap_grid


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over entries where ``mask > 0`` (``mask`` broadcasts to ``values``); 0 if none."""
    mask = mask.to(values.dtype).expand_as(values)
    values = torch.where(mask > 0, values, torch.zeros_like(values))
    return (values * mask).sum() / mask.sum().clamp_min(1)


def _clean(target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the unlabelled targets (NaN-safe): a NaN there would leak NaN gradients through 0 * NaN."""
    keep = (mask > 0).view(mask.shape + (1,) * (target.dim() - mask.dim()))
    return torch.where(keep, target, torch.zeros_like(target))


def _ones(n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.ones(n, device=like.device, dtype=like.dtype)


def hopenet_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                 alpha: float = 2.0, bins: PoseBins = HOPENET_BINS) -> torch.Tensor:
    """Hopenet's multi-loss: per angle, cross-entropy on the bin + ``alpha`` x squared error (deg^2)
    of the softmax expectation; summed over yaw, pitch, roll, averaged over labelled samples.

    ``logits`` (N, 3, B), ``target`` (N, 3) degrees, ``mask`` (N,). ``alpha = 0`` is pure
    classification; the paper's best is ``alpha = 2`` on AFLW2000.
    """
    n = logits.shape[0]
    mask = _ones(n, logits) if mask is None else mask
    target = _clean(target, mask)
    labels = bins.labels(target)
    ce = F.cross_entropy(logits.reshape(-1, bins.count), labels.reshape(-1), reduction="none").view(n, 3)
    mean, _ = bin_expectation(logits, bins.centres(logits.device, logits.dtype))
    return masked_mean((ce + alpha * (mean - target) ** 2).sum(-1), mask)


def pose_regression_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Squared error (deg^2) summed over the three angles: Hopenet's regression-only baseline."""
    mask = _ones(pred.shape[0], pred) if mask is None else mask
    return masked_mean(((pred - _clean(target, mask)) ** 2).sum(-1), mask)


def rotation_loss(rot6d: torch.Tensor, target_pose: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Geodesic angle (radians) between the 6D head's rotation and the labelled pose's (6DRepNet)."""
    mask = _ones(rot6d.shape[0], rot6d) if mask is None else mask
    R_true = rt.euler_to_matrix(_clean(target_pose, mask))
    angle = rt.geodesic_distance(rt.sixd_to_matrix(rot6d), R_true) * (math.pi / 180)
    return masked_mean(angle, mask)


def wing(x: torch.Tensor, w: float, eps: float) -> torch.Tensor:
    """Wing loss of an error (Feng et al. 2018): ``w ln(1 + |x|/eps)`` below ``w``, ``|x| - C`` above."""
    a = x.abs()
    c = w - w * math.log1p(w / eps)
    return torch.where(a < w, w * torch.log1p(a / eps), a - c)


def landmark_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                  kind: str = "wing", w: float = 10 / 128, eps: float = 2 / 128) -> torch.Tensor:
    """Coordinate loss, summed over x and y, averaged over labelled points.

    ``pred``, ``target`` (N, K, 2) normalised crop coordinates, ``mask`` (N, K). ``kind``: ``"wing"``
    (defaults: the paper's w = 10, eps = 2 pixels, here of a 128-px crop) or ``"l1"``.
    """
    mask = torch.ones(pred.shape[:2], device=pred.device, dtype=pred.dtype) if mask is None else mask
    err = pred - _clean(target, mask)
    if kind == "wing":
        per_point = wing(err, w, eps).sum(-1)
    elif kind == "l1":
        per_point = err.abs().sum(-1)
    else:
        raise ValueError(f"landmark loss kind must be 'wing' or 'l1', not {kind!r}")
    return masked_mean(per_point, mask)


def heatmap_loss(heatmaps: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                 sigma: float = 1.0) -> torch.Tensor:
    """KL divergence from a Gaussian target (std ``sigma`` cells, centred on the true point) to each
    heatmap's spatial softmax, averaged over labelled points; 0 when they match.

    The models decode heatmaps by soft-argmax, so the heatmap *is* a distribution: this trains its
    shape (DSNT's regulariser, Nibali et al. 2018) where a plain MSE on raw heatmaps would fight
    the softmax. ``heatmaps`` (N, K, h, w) logits, ``target`` (N, K, 2) normalised, ``mask`` (N, K).
    """
    n, k, h, w = heatmaps.shape
    mask = torch.ones((n, k), device=heatmaps.device, dtype=heatmaps.dtype) if mask is None else mask
    target = _clean(target, mask)
    xs, ys = heatmap_grid(h, w, heatmaps.device, heatmaps.dtype)
    dx = (xs - target[..., :1]) * w  # (N, K, w) in cells
    dy = (ys - target[..., 1:]) * h  # (N, K, h)
    d2 = dy.unsqueeze(-1) ** 2 + dx.unsqueeze(-2) ** 2  # (N, K, h, w)
    # Normalised in log space: stays finite for points far outside the crop.
    log_t = torch.log_softmax(-d2.flatten(2) / (2 * sigma ** 2), dim=-1)
    log_p = torch.log_softmax(heatmaps.flatten(2), dim=-1)
    kl = (log_t.exp() * (log_t - log_p)).sum(-1)
    return masked_mean(kl, mask)


def visibility_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy per landmark, averaged over points with a known visibility. (N, K)."""
    mask = torch.ones_like(logits) if mask is None else mask
    bce = F.binary_cross_entropy_with_logits(logits, _clean(target, mask), reduction="none")
    return masked_mean(bce, mask)


def expression_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                    label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy over the expression classes, averaged over samples with a label.

    ``logits`` (N, C), ``target`` (N,) int64 (any value where unlabelled), ``mask`` (N,).
    """
    mask = _ones(logits.shape[0], logits) if mask is None else mask
    labels = torch.where(mask > 0, target, torch.zeros_like(target)).clamp(0, logits.shape[1] - 1)
    ce = F.cross_entropy(logits, labels, reduction="none", label_smoothing=label_smoothing)
    return masked_mean(ce, mask)


TASKS = ("pose", "rotation", "landmarks", "heatmaps", "visibility", "expression")


class TaskWeighting(nn.Module):
    """Named task losses combined with fixed or learned weights (see :class:`MultiTaskLoss`, whose
    rule it is; the detector's loss uses it too). ``log_vars`` holds the learned log-variances."""

    def __init__(self, tasks: Sequence[str], weights: dict[str, float] | None, weighting: str):
        super().__init__()
        unknown = set(weights or {}) - set(tasks)
        if unknown:
            raise ValueError(f"unknown tasks {sorted(unknown)}; known: {', '.join(tasks)}")
        if weighting not in ("fixed", "uncertainty"):
            raise ValueError(f"weighting must be 'fixed' or 'uncertainty', not {weighting!r}")
        self.weights = {t: 1.0 for t in tasks} | dict(weights or {})
        self.weighting = weighting
        self.log_vars = nn.ParameterDict(
            {t: nn.Parameter(torch.zeros(())) for t in tasks if self.weights[t] > 0}
            if weighting == "uncertainty" else {})

    def weighted_sum(self, parts: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor | None:
        """``sum_t w_t L_t`` or ``sum_t w_t (exp(-s_t) L_t + s_t)`` over ``{task: (loss, labelled)}``,
        a task with no label in the batch adding exactly 0; None for no parts."""
        total = None
        for task, (loss, labelled) in parts.items():
            term = loss
            if self.weighting == "uncertainty":
                s = self.log_vars[task]
                term = (torch.exp(-s) * loss + s) * labelled.to(loss.dtype)
            term = self.weights[task] * term
            total = term if total is None else total + term
        return total


class MultiTaskLoss(TaskWeighting):
    """All task losses of a model's raw outputs, combined with fixed or learned weights.

    ``weighting="fixed"``: ``sum_t w_t L_t``. ``weighting="uncertainty"`` (Kendall, Gal & Cipolla
    2018): ``sum_t w_t (exp(-s_t) L_t + s_t)`` with a learned log-variance ``s_t`` per task
    (starting at 0, where it equals the weighted sum); each task's effective weight settles at
    ``w_t / L_t``, so no hand tuning across tasks with different units. ``w_t`` (default 1) is
    then a priority: a task whose loss stays high however well it is learnt (7-way expression on
    FER2013) would otherwise get the least gradient of all. Weight 0 disables a task. A task is
    used when the model has its output; a task with no label in the batch adds exactly 0 (its
    ``s_t`` term is gated too, else it would drift down).

    Parts: ``pose`` (Hopenet multi-loss, or regression MSE for a regression head), ``rotation``
    (geodesic, 6D head), ``landmarks`` (coordinates), ``heatmaps`` (KL), ``visibility`` (BCE),
    ``expression`` (CE).
    """

    def __init__(self, weights: dict[str, float] | None = None, weighting: str = "fixed", alpha: float = 2.0,
                 landmark_kind: str = "wing", heatmap_sigma: float = 1.0, label_smoothing: float = 0.0,
                 bins: PoseBins = HOPENET_BINS):
        super().__init__(TASKS, weights, weighting)
        self.alpha, self.landmark_kind, self.heatmap_sigma = alpha, landmark_kind, heatmap_sigma
        self.label_smoothing, self.bins = label_smoothing, bins

    def task_losses(self, outputs: dict[str, torch.Tensor],
                    batch: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{task: (loss, labelled)}`` for every enabled task the outputs allow; ``labelled`` is a
        0-dim bool tensor, False when the batch has no label for the task."""
        parts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

        def add(task: str, loss: torch.Tensor, mask: torch.Tensor) -> None:
            if self.weights[task] > 0:
                parts[task] = (loss, mask.sum() > 0)

        pm = batch.get("pose_mask")
        if pm is not None:
            if "pose_logits" in outputs:
                add("pose", hopenet_loss(outputs["pose_logits"], batch["pose"], pm, self.alpha, self.bins), pm)
            elif "pose" in outputs:
                add("pose", pose_regression_loss(outputs["pose"], batch["pose"], pm), pm)
            if "rot6d" in outputs:
                add("rotation", rotation_loss(outputs["rot6d"], batch["pose"], pm), pm)
        lm = batch.get("landmarks_mask")
        if lm is not None:
            if "landmarks" in outputs:
                add("landmarks", landmark_loss(outputs["landmarks"], batch["landmarks"], lm, self.landmark_kind), lm)
            if "heatmaps" in outputs:
                add("heatmaps", heatmap_loss(outputs["heatmaps"], batch["landmarks"], lm, self.heatmap_sigma), lm)
        vm = batch.get("visibility_mask")
        if vm is not None and "visibility_logits" in outputs:
            add("visibility", visibility_loss(outputs["visibility_logits"], batch["visibility"], vm), vm)
        em = batch.get("expression_mask")
        if em is not None and "expression_logits" in outputs:
            add("expression", expression_loss(outputs["expression_logits"], batch["expression"], em,
                                              self.label_smoothing), em)
        return parts

    def forward(self, outputs: dict[str, torch.Tensor],
                batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns ``(total, {task: loss})``; the parts are unweighted (0 for unlabelled tasks)."""
        parts = self.task_losses(outputs, batch)
        total = self.weighted_sum(parts)
        if total is None:
            raise ValueError("no loss: the outputs and the batch share no task")
        return total, {t: loss for t, (loss, _) in parts.items()}

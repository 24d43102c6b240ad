"""The MOS detector's loss: focal score loss, smooth-L1 box and five-point losses, geodesic pose
loss, combined with learned (Kendall) or fixed task weights; and the miss statistics that drive
the data feedback (:mod:`facemtl.train.detection.data`).

Regression terms are averaged over the positive anchors (points and pose over those whose face
has them), the score term is summed over the non-ignored anchors and divided by the number of
positives (RetinaNet). The miss statistics are buffers of the loss module, so the trainer's
checkpoint stores them with the learned task weights and a resumed run samples as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facemtl.losses import TaskWeighting, masked_mean, rotation_loss
from facemtl.train.detection.data import KINDS
DETECTION_TASKS = ("score", "box", "points", "pose")


def focal_loss(logits: torch.Tensor, label: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss summed over anchors with label 0 or 1 (label -1 is ignored), over the positives."""
    valid = label >= 0
    target = (label == 1).to(logits.dtype)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    loss = a_t * (1 - p_t) ** gamma * ce
    return torch.where(valid, loss, torch.zeros_like(loss)).sum() / target.sum().clamp_min(1)


def best_face_scores(scores: torch.Tensor, face: torch.Tensor, n_faces: int) -> torch.Tensor:
    """(N, A) probabilities, (N, A) matched face index (-1: none) -> (N, F) best score of each face's anchors."""
    n = scores.shape[0]
    flat = torch.zeros(n * n_faces, dtype=scores.dtype, device=scores.device)
    matched = face >= 0
    index = (torch.arange(n, device=face.device)[:, None] * n_faces + face)[matched]
    return flat.scatter_reduce(0, index, scores[matched], reduce="amax").view(n, n_faces)


class DetectionLoss(TaskWeighting):
    """Sum of the four task losses, fixed or uncertainty-weighted (as :class:`facemtl.losses.MultiTaskLoss`:
    ``w_t (exp(-s_t) L_t + s_t)``, the term gated off when the batch has no label for the task).

    ``miss`` (buffer, len(KINDS) + 1): running miss rate of the faces of each kind, and of all
    faces last; a face is missed when none of its anchors scores ``hit_score`` or more.
    """

    def __init__(self, weights: dict[str, float] | None = None, weighting: str = "uncertainty",
                 alpha: float = 0.25, gamma: float = 2.0, hit_score: float = 0.5, momentum: float = 0.98):
        super().__init__(DETECTION_TASKS, weights, weighting)
        self.alpha, self.gamma = alpha, gamma
        self.hit_score, self.momentum = hit_score, momentum
        self.register_buffer("miss", torch.full((len(KINDS) + 1,), 0.5))

    def task_losses(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, tuple]:
        pos = (batch["label"] == 1).to(out["box_deltas"].dtype)
        box = F.smooth_l1_loss(out["box_deltas"], batch["box"], reduction="none").sum(-1)
        points = F.smooth_l1_loss(out["point_deltas"], batch["points"], reduction="none").sum((-1, -2))
        pm, qm = pos * batch["points_mask"], pos * batch["pose_mask"]
        pose = rotation_loss(out["rot6d"].reshape(-1, 6), batch["pose"].reshape(-1, 3), qm.reshape(-1))
        return {"score": (focal_loss(out["score_logits"], batch["label"], self.alpha, self.gamma), pos.sum() > 0),
                "box": (masked_mean(box, pos), pos.sum() > 0), "points": (masked_mean(points, pm), pm.sum() > 0),
                "pose": (pose, qm.sum() > 0)}

    def forward(self, out: dict[str, torch.Tensor],
                batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns ``(total, {task: unweighted loss})`` and updates the miss statistics."""
        parts = {t: v for t, v in self.task_losses(out, batch).items() if self.weights[t] > 0}
        total = self.weighted_sum(parts)
        if total is None:  # every task weighted 0: a zero still connected to the graph
            total = out["score_logits"].sum() * 0
        if self.training:
            self.update_misses(out["score_logits"].detach(), batch)
        return total, {t: loss for t, (loss, _) in parts.items()}

    @torch.no_grad()
    def update_misses(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        kinds, valid = batch["face_kinds"], batch["face_valid"] > 0  # (N, F, K), (N, F)
        best = best_face_scores(torch.sigmoid(logits.float()), batch["face"], kinds.shape[1])
        missed = (best < self.hit_score).float()
        groups = torch.cat([kinds > 0, torch.ones_like(kinds[..., :1], dtype=torch.bool)], -1) & valid[..., None]
        count = groups.sum((0, 1))
        rate = (groups * missed[..., None]).sum((0, 1)) / count.clamp_min(1)
        self.miss.copy_(torch.where(count > 0, self.momentum * self.miss + (1 - self.momentum) * rate, self.miss))


def distillation_losses(feats: list[torch.Tensor], out: dict[str, torch.Tensor], teacher_feats: list[torch.Tensor],
                        teacher_out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A student detector against a teacher (knowledge distillation, Hinton et al. 2015; features as
    FitNets, Romero et al. 2015): ``features``, the squared error of the backbone's features over
    the teacher's mean square, summed over the levels; ``scores``, the KL divergence of the anchors'
    face probabilities, summed and divided by the teacher's expected number of positives (as the
    focal loss); ``codes``, smooth-L1 of the box, point and 6D codes weighted by the teacher's face
    probability (its background anchors' codes mean nothing)."""
    features = sum(F.mse_loss(s, t) / t.pow(2).mean().clamp_min(1e-6) for s, t in zip(feats, teacher_feats))
    p = torch.sigmoid(teacher_out["score_logits"])
    kl = (F.binary_cross_entropy_with_logits(out["score_logits"], p, reduction="none")
          - F.binary_cross_entropy_with_logits(teacher_out["score_logits"], p, reduction="none"))
    codes = sum(F.smooth_l1_loss(out[k], teacher_out[k], reduction="none").flatten(2).sum(-1)
                for k in ("box_deltas", "point_deltas", "rot6d"))
    positives = p.sum().clamp_min(1)
    return {"features": features, "scores": kl.sum() / positives, "codes": (p * codes).sum() / positives}


def stride8_distillation(student: torch.nn.Module, teacher: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """The squared error of a student detector's stride-8 feature against the teacher's, over the
    teacher's mean square (config ``distill: {stride: 8}``, with ``trained_stride: 8``: a new stem
    learns to give what the teacher's gave; nothing after it runs)."""
    with torch.no_grad():
        target = teacher.backbone.stride8(teacher.norm(image))
    feature = student.backbone.stride8(student.norm(image))
    return F.mse_loss(feature, target) / target.pow(2).mean().clamp_min(1e-6)

"""Losses: hand-computed values on tiny cases, masking (zero loss and gradient), weighting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facemtl.geometry.rotations import euler_to_matrix, matrix_to_6d
from facemtl.losses import (MultiTaskLoss, expression_loss, heatmap_loss, hopenet_loss, landmark_loss,
                            masked_mean, pose_regression_loss, rotation_loss, visibility_loss, wing)

LN66 = math.log(66)


def one_hot_logits(bins: list[int]) -> torch.Tensor:
    logits = torch.full((1, 3, 66), -1e4)
    for a, k in enumerate(bins):
        logits[0, a, k] = 0
    return logits


def test_hopenet_loss_uniform_logits():
    # Uniform softmax: CE = ln 66 per angle, expectation = 0 deg.
    logits = torch.zeros(1, 3, 66)
    assert hopenet_loss(logits, torch.zeros(1, 3)).item() == pytest.approx(3 * LN66, rel=1e-6)
    target = torch.tensor([[3.0, -6.0, 0.0]])
    expected = 3 * LN66 + 2.0 * (9 + 36)
    assert hopenet_loss(logits, target, alpha=2.0).item() == pytest.approx(expected, rel=1e-5)
    assert hopenet_loss(logits, target, alpha=0.0).item() == pytest.approx(3 * LN66, rel=1e-6)


def test_hopenet_loss_one_hot():
    # All mass in the labelled bins (33 holds [0, 3), centre 1.5): CE 0, only the squared offset remains.
    logits = one_hot_logits([33, 33, 30])  # bin 30 holds [-9, -6), centre -7.5
    target = torch.tensor([[0.0, 2.0, -8.0]])
    expected = 1.0 * (1.5 ** 2 + 0.5 ** 2 + 0.5 ** 2)
    assert hopenet_loss(logits, target, alpha=1.0).item() == pytest.approx(expected, rel=1e-5)


def test_hopenet_loss_masks_samples_and_their_gradients():
    torch.manual_seed(0)
    logits = torch.randn(3, 3, 66, requires_grad=True)
    target = torch.tensor([[10.0, -5.0, 2.0], [float("nan")] * 3, [-40.0, 20.0, 0.0]])
    mask = torch.tensor([1.0, 0.0, 1.0])
    loss = hopenet_loss(logits, target, mask)
    loss.backward()
    keep = [0, 2]
    alone = hopenet_loss(logits.detach()[keep], target[keep])
    assert loss.item() == pytest.approx(alone.item(), rel=1e-6)
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[1] == 0).all() and (logits.grad[0] != 0).any()


def test_nothing_labelled_gives_zero_connected_loss():
    logits = torch.randn(2, 3, 66, requires_grad=True)
    loss = hopenet_loss(logits, torch.full((2, 3), float("nan")), torch.zeros(2))
    assert loss.item() == 0
    loss.backward()
    assert (logits.grad == 0).all()


def test_masked_mean():
    v = torch.tensor([[1.0, 2.0], [3.0, float("nan")]])
    assert masked_mean(v, torch.tensor([[1.0, 1.0], [1.0, 0.0]])).item() == pytest.approx(2.0)


def test_pose_regression_loss():
    pred = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    assert pose_regression_loss(pred, target).item() == pytest.approx((14 + 75) / 2)
    assert pose_regression_loss(pred, target, torch.tensor([1.0, 0.0])).item() == pytest.approx(14)


def test_rotation_loss_is_the_geodesic_angle():
    poses = np.array([[20.0, -10.0, 5.0], [0.0, 0.0, 0.0]])
    sixd = torch.from_numpy(matrix_to_6d(euler_to_matrix(poses))).float()
    target = torch.tensor([[20.0, -10.0, 5.0], [30.0, 0.0, 0.0]])  # second: pure 30 deg yaw apart
    per = [rotation_loss(sixd[i:i + 1], target[i:i + 1]).item() for i in range(2)]
    assert per[0] == pytest.approx(0, abs=1e-3)
    assert per[1] == pytest.approx(math.radians(30), rel=1e-5)
    masked = rotation_loss(sixd, target, torch.tensor([0.0, 1.0]))
    assert masked.item() == pytest.approx(math.radians(30), rel=1e-5)


def test_wing_values():
    w, eps = 10.0, 2.0
    x = torch.tensor([0.0, 1.0, -1.0, 20.0])
    c = w - w * math.log(1 + w / eps)
    expected = [0, 10 * math.log(1.5), 10 * math.log(1.5), 20 - c]
    assert torch.allclose(wing(x, w, eps), torch.tensor(expected))
    # Continuous at |x| = w.
    assert wing(torch.tensor([w - 1e-4]), w, eps).item() == pytest.approx(wing(torch.tensor([w]), w, eps).item(),
                                                                          abs=1e-3)


def test_landmark_losses_hand_values_and_mask():
    pred = torch.tensor([[[0.5, 0.5], [0.1, 0.2]]])
    target = torch.tensor([[[0.6, 0.3], [float("nan"), float("nan")]]])
    mask = torch.tensor([[1.0, 0.0]])
    assert landmark_loss(pred, target, mask, kind="l1").item() == pytest.approx(0.3, rel=1e-5)
    w, eps = 0.5, 0.1
    expected = w * math.log(1 + 0.1 / eps) + w * math.log(1 + 0.2 / eps)
    assert landmark_loss(pred, target, mask, kind="wing", w=w, eps=eps).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError):
        landmark_loss(pred, target, mask, kind="l7")


def test_landmark_loss_masked_points_get_no_gradient():
    pred = torch.rand(2, 68, 2, requires_grad=True)
    target = torch.rand(2, 68, 2)
    mask = torch.ones(2, 68)
    mask[1, 10:] = 0
    target[1, 10:] = float("nan")
    landmark_loss(pred, target, mask).backward()
    assert torch.isfinite(pred.grad).all()
    assert (pred.grad[1, 10:] == 0).all() and (pred.grad[1, :10] != 0).all()


def test_heatmap_loss_zero_at_the_target_and_hand_value():
    h = w = 8
    target = torch.tensor([[[2.5 / 8, 5.5 / 8]]])  # centre of cell (row 5, col 2)
    sigma = 1.0
    jj, ii = np.meshgrid(np.arange(w), np.arange(h))
    log_t = -((jj - 2) ** 2 + (ii - 5) ** 2) / (2 * sigma ** 2)
    log_t = log_t - np.log(np.exp(log_t).sum())
    exact = torch.from_numpy(log_t).float().view(1, 1, h, w)
    assert heatmap_loss(exact, target, sigma=sigma).item() == pytest.approx(0, abs=1e-6)
    # Uniform heatmap: KL = ln(h w) - entropy(target).
    entropy = -(np.exp(log_t) * log_t).sum()
    uniform = heatmap_loss(torch.zeros(1, 1, h, w), target, sigma=sigma).item()
    assert uniform == pytest.approx(math.log(h * w) - entropy, rel=1e-5)


def test_heatmap_loss_far_outside_point_is_finite_and_masking_works():
    hm = torch.randn(1, 2, 8, 8, requires_grad=True)
    target = torch.tensor([[[5.0, -3.0], [float("nan"), float("nan")]]])
    loss = heatmap_loss(hm, target, torch.tensor([[1.0, 0.0]]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(hm.grad).all()
    assert (hm.grad[0, 1] == 0).all()


def test_visibility_loss():
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    target = torch.tensor([[1.0, 0.0, float("nan")]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    expected = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert visibility_loss(logits, target, mask).item() == pytest.approx(expected, rel=1e-5)


def test_expression_loss_masks_missing_labels():
    logits = torch.tensor([[2.0, 0, 0, 0, 0, 0, 0], [0.0] * 7], requires_grad=True)
    target = torch.tensor([0, -1])
    loss = expression_loss(logits, target, torch.tensor([1.0, 0.0]))
    expected = -math.log(math.exp(2) / (math.exp(2) + 6))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert (logits.grad[1] == 0).all()


def _batch(n: int = 3) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(0)
    outputs = {
        "pose_logits": torch.randn(n, 3, 66, generator=g, requires_grad=True),
        "rot6d": torch.randn(n, 6, generator=g, requires_grad=True),
        "landmarks": torch.rand(n, 68, 2, generator=g, requires_grad=True),
        "heatmaps": torch.randn(n, 68, 8, 8, generator=g, requires_grad=True),
        "visibility_logits": torch.randn(n, 68, generator=g, requires_grad=True),
        "expression_logits": torch.randn(n, 7, generator=g, requires_grad=True),
    }
    batch = {
        "pose": torch.rand(n, 3, generator=g) * 60, "pose_mask": torch.ones(n),
        "landmarks": torch.rand(n, 68, 2, generator=g), "landmarks_mask": torch.ones(n, 68),
        "visibility": torch.ones(n, 68), "visibility_mask": torch.ones(n, 68),
        "expression": torch.zeros(n, dtype=torch.long), "expression_mask": torch.zeros(n),  # no expression labels
    }
    return outputs, batch


def test_fixed_weighting_is_the_weighted_sum():
    outputs, batch = _batch()
    weights = {"pose": 0.5, "landmarks": 10.0, "heatmaps": 0.0}
    total, parts = MultiTaskLoss(weights=weights)(outputs, batch)
    assert "heatmaps" not in parts and set(parts) == {"pose", "rotation", "landmarks", "visibility", "expression"}
    assert parts["expression"].item() == 0  # unlabelled in this batch
    expected = 0.5 * parts["pose"] + parts["rotation"] + 10 * parts["landmarks"] + parts["visibility"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts["pose"].item() == pytest.approx(
        hopenet_loss(outputs["pose_logits"], batch["pose"], alpha=2.0).item(), rel=1e-6)


def test_uncertainty_weighting():
    outputs, batch = _batch()
    crit = MultiTaskLoss(weighting="uncertainty")
    params = dict(crit.named_parameters())
    assert len(params) == 6 and all(p.requires_grad for p in params.values())
    total, parts = crit(outputs, batch)
    # At log-variance 0 it is the plain sum.
    assert total.item() == pytest.approx(sum(p.item() for p in parts.values()), rel=1e-6)
    total.backward()
    s = crit.log_vars
    # d/ds (exp(-s) L + s) = 1 - L at s = 0; an unlabelled task's term is gated off.
    assert s["pose"].grad.item() == pytest.approx(1 - parts["pose"].item(), rel=1e-5)
    assert s["expression"].grad.item() == 0
    with torch.no_grad():
        s["pose"].fill_(math.log(4.0))
    total2, parts2 = crit(outputs, batch)
    expected = sum(p.item() for k, p in parts2.items() if k != "pose") + parts2["pose"].item() / 4 + math.log(4)
    assert total2.item() == pytest.approx(expected, rel=1e-5)


def test_uncertainty_weighting_keeps_task_priorities():
    outputs, batch = _batch()
    plain = MultiTaskLoss(weighting="uncertainty")
    weighted = MultiTaskLoss(weighting="uncertainty", weights={"landmarks": 3.0})
    with torch.no_grad():
        for crit in (plain, weighted):
            crit.log_vars["landmarks"].fill_(0.7)
    (t1, parts), (t3, _) = plain(outputs, batch), weighted(outputs, batch)
    # The priority scales the whole term, so s_t still settles at log L_t and the weight at w_t / L_t.
    term = math.exp(-0.7) * parts["landmarks"].item() + 0.7
    assert t3.item() - t1.item() == pytest.approx(2 * term, abs=1e-3)  # float32 totals of ~300
    t3.backward()
    assert weighted.log_vars["landmarks"].grad.item() == pytest.approx(
        3 * (1 - math.exp(-0.7) * parts["landmarks"].item()), rel=1e-5)


def test_regression_outputs_use_the_regression_loss():
    pred = torch.zeros(2, 3, requires_grad=True)
    batch = {"pose": torch.tensor([[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]]), "pose_mask": torch.ones(2)}
    total, parts = MultiTaskLoss()({"pose": pred}, batch)
    assert set(parts) == {"pose"} and total.item() == pytest.approx(4.5)


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="unknown tasks"):
        MultiTaskLoss(weights={"age": 1.0})
    with pytest.raises(ValueError, match="weighting"):
        MultiTaskLoss(weighting="gradnorm")
    with pytest.raises(ValueError, match="no loss"):
        MultiTaskLoss()({"expression_logits": torch.zeros(1, 7)},
                        {"pose": torch.zeros(1, 3), "pose_mask": torch.ones(1)})

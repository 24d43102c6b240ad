"""Face-detection metrics (pure numpy): IoU, average precision, recall at a score threshold.

Boxes are ``[x1, y1, x2, y2]`` in continuous pixel coordinates: area ``(x2 - x1) * (y2 - y1)``
(no VOC-style ``+1``). Evaluation sets are given per image as lists of equal length:
``pred_boxes[i]`` (K_i, 4), ``pred_scores[i]`` (K_i,), ``gt_boxes[i]`` (M_i, 4) and optionally
``gt_ignore[i]`` (M_i,) bool (WIDER FACE's "ignore" faces).

Matching (Pascal VOC / WIDER FACE evaluation): detections of all images are taken by
decreasing score; each is compared with the ground truth of its image of highest IoU.
With IoU >= ``iou_threshold`` it is a true positive if that box is not yet matched, a false
positive if it is (a duplicate), and it is dropped (neither) if that box is ignored. Below
the threshold it is a false positive. Ignored boxes do not count as positives.

An empty image list raises ``ValueError``; with no non-ignored ground truth box the results
are ``NaN``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union, (N, 4) x (M, 4) -> (N, M). 0 where the union is empty."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_detections(pred_boxes: Sequence[np.ndarray], pred_scores: Sequence[np.ndarray],
                     gt_boxes: Sequence[np.ndarray], gt_ignore: Sequence[np.ndarray] | None = None,
                     iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, int]:
    """Greedy matching of all detections (module docstring).

    Returns ``(scores, is_tp, n_positives)``: the scores of the kept (not ignored) detections
    in decreasing order, whether each is a true positive, and the number of non-ignored
    ground-truth boxes.
    """
    n_images = len(gt_boxes)
    if n_images == 0:
        raise ValueError("no images to evaluate")
    if len(pred_boxes) != n_images or len(pred_scores) != n_images or (
            gt_ignore is not None and len(gt_ignore) != n_images):
        raise ValueError("pred_boxes, pred_scores, gt_boxes (and gt_ignore) must have one entry per image")
    # Per detection: its image, best ground-truth box (-1: none reaches the threshold) and score.
    image_ids, best_gt, scores, ignores = [], [], [], []
    for i in range(n_images):
        pb = np.asarray(pred_boxes[i], dtype=np.float64).reshape(-1, 4)
        ps = np.asarray(pred_scores[i], dtype=np.float64).reshape(-1)
        gb = np.asarray(gt_boxes[i], dtype=np.float64).reshape(-1, 4)
        ig = np.zeros(len(gb), bool) if gt_ignore is None else np.asarray(gt_ignore[i], dtype=bool).reshape(-1)
        if len(pb) != len(ps):
            raise ValueError(f"image {i}: {len(pb)} predicted boxes but {len(ps)} scores")
        if len(ig) != len(gb):
            raise ValueError(f"image {i}: {len(gb)} ground-truth boxes but {len(ig)} ignore flags")
        if len(gb):
            ov = iou(pb, gb)
            j = ov.argmax(axis=1)
            best_gt.append(np.where(ov[np.arange(len(pb)), j] >= iou_threshold, j, -1))
        else:
            best_gt.append(np.full(len(pb), -1))
        image_ids.append(np.full(len(pb), i))
        scores.append(ps)
        ignores.append(ig)
    image_ids, best_gt, scores = np.concatenate(image_ids), np.concatenate(best_gt), np.concatenate(scores)
    matched = [np.zeros(len(ig), bool) for ig in ignores]
    kept, is_tp = [], []
    for k in np.argsort(-scores, kind="stable"):
        i, j = image_ids[k], best_gt[k]
        if j >= 0 and ignores[i][j]:
            continue
        is_tp.append(j >= 0 and not matched[i][j])
        if j >= 0:
            matched[i][j] = True
        kept.append(k)
    n_positives = int(sum((~ig).sum() for ig in ignores))
    return scores[np.array(kept, dtype=int)], np.array(is_tp, dtype=bool), n_positives


def average_precision(pred_boxes: Sequence[np.ndarray], pred_scores: Sequence[np.ndarray],
                      gt_boxes: Sequence[np.ndarray], gt_ignore: Sequence[np.ndarray] | None = None,
                      iou_threshold: float = 0.5) -> float:
    """Average precision with VOC all-points interpolation (VOC 2010+, WIDER FACE), in [0, 1].

    ``AP = sum_k (r_k - r_{k-1}) * max_{k' >= k} p_{k'}`` over the precision/recall points of
    the score-ranked detections. 0 with no detection; ``NaN`` with no positive.
    """
    _, is_tp, n_pos = match_detections(pred_boxes, pred_scores, gt_boxes, gt_ignore, iou_threshold)
    if n_pos == 0:
        return float("nan")
    tp = np.cumsum(is_tp)
    recall = np.r_[0.0, tp / n_pos]
    precision = np.r_[0.0, tp / np.arange(1, len(tp) + 1)]
    # Precision envelope: best precision at this recall or higher.
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(np.diff(recall) * envelope[1:]))


def recall_at_score(pred_boxes: Sequence[np.ndarray], pred_scores: Sequence[np.ndarray],
                    gt_boxes: Sequence[np.ndarray], score_threshold: float,
                    gt_ignore: Sequence[np.ndarray] | None = None, iou_threshold: float = 0.5) -> float:
    """Fraction of non-ignored ground-truth boxes matched by detections with ``score >= score_threshold``.

    Greedy matching by decreasing score makes this the same as matching only those
    detections. ``NaN`` with no positive.
    """
    scores, is_tp, n_pos = match_detections(pred_boxes, pred_scores, gt_boxes, gt_ignore, iou_threshold)
    if n_pos == 0:
        return float("nan")
    return float(np.sum(is_tp & (scores >= score_threshold)) / n_pos)

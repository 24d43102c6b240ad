"""Per-anchor training targets of one canvas (numpy; runs in the data workers).

Matching (RetinaFace): an anchor whose IoU with a face's box is at least ``pos_iou`` is a
positive of its best face; every face also claims its single best anchor, so a face between
anchor sizes is never left without one. Anchors below ``neg_iou`` with every face are
negatives, the rest are ignored (neither: a half-overlapping anchor is not clearly background).
Anchors that overlap an *ignored* face (hardly visible, WIDER FACE's "invalid") by ``neg_iou``
or more are ignored too, so the score loss never calls them background.
"""

from __future__ import annotations

import numpy as np

from facemtl.geometry.anchors import N_POINTS, AnchorSpec, encode_boxes, encode_points, prior_boxes
from facemtl.metrics.detection import iou

POSITIVE, NEGATIVE, IGNORED = 1, 0, -1


def match_anchors(anchors: np.ndarray, boxes: np.ndarray, ignore: np.ndarray | None = None,
                  pos_iou: float = 0.35, neg_iou: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """``(label (A,) int64 in {1, 0, -1}, face (A,) int64)``: the matched face index (-1 for none)."""
    a = len(anchors)
    label, face = np.full(a, NEGATIVE, np.int64), np.full(a, -1, np.int64)
    if len(boxes) == 0:
        return label, face
    ignore = np.zeros(len(boxes), bool) if ignore is None else np.asarray(ignore, bool)
    ov = iou(prior_boxes(anchors), boxes)  # (A, F)
    ignored_overlap = (ov[:, ignore] >= neg_iou).any(1) if ignore.any() else np.zeros(a, bool)
    ov[:, ignore] = -1.0
    best = ov.argmax(1)
    best_iou = ov[np.arange(a), best]
    for j in np.flatnonzero(~ignore):  # each face's best anchor (later faces win a shared one)
        i = int(ov[:, j].argmax())
        if ov[i, j] > 0:  # a face off the canvas touches no anchor and claims none
            best[i], best_iou[i] = j, max(best_iou[i], pos_iou)
    pos = best_iou >= pos_iou
    label[(best_iou >= neg_iou) & ~pos] = IGNORED
    label[ignored_overlap & ~pos] = IGNORED
    label[pos] = POSITIVE
    face[pos] = best[pos]
    return label, face


def build_targets(anchors: np.ndarray, spec: AnchorSpec, boxes: np.ndarray, points: np.ndarray,
                  pose: np.ndarray, ignore: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Targets of one canvas from its faces.

    ``boxes`` (F, 4) canvas pixels, ``points`` (F, 5, 2) (NaN where unknown), ``pose`` (F, 3)
    degrees (NaN where unknown). Returns ``label`` (A,), ``face`` (A,), ``box`` (A, 4) and
    ``points`` (A, 5, 2) codes, ``points_mask`` (A,), ``pose`` (A, 3), ``pose_mask`` (A,);
    every regression target is 0 (and masked) off the positives.
    """
    a = len(anchors)
    label, face = match_anchors(anchors, boxes, ignore)
    pos = label == POSITIVE
    out = {"label": label, "face": face, "box": np.zeros((a, 4), np.float32),
           "points": np.zeros((a, N_POINTS, 2), np.float32), "points_mask": np.zeros(a, np.float32),
           "pose": np.zeros((a, 3), np.float32), "pose_mask": np.zeros(a, np.float32)}
    if not pos.any():
        return out
    f = face[pos]
    out["box"][pos] = encode_boxes(boxes[f], anchors[pos], spec.variances)
    p = points[f]
    known = np.isfinite(p).all(axis=(1, 2))
    out["points"][pos] = np.where(known[:, None, None], encode_points(np.nan_to_num(p), anchors[pos],
                                                                      spec.variances), 0)
    out["points_mask"][pos] = known
    q = pose[f]
    known = np.isfinite(q).all(axis=1)
    out["pose"][pos] = np.where(known[:, None], np.nan_to_num(q), 0)
    out["pose_mask"][pos] = known
    return out

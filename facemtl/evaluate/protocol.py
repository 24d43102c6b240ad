"""The evaluation protocol: crop each labelled face around its ground-truth box, predict, score.

Hopenet's AFLW2000 protocol crops around the ground-truth landmarks; facemtl crops every model
input the same way (``facemtl.contract.crop_face`` around the tight landmark box, the
model's own ``crop_scale``), so the numbers are comparable across models and with inference.

``predict`` is any function from a uint8 BGR crop batch (N, S, S, 3) to the decoded outputs of
``docs/model-format.md`` as numpy arrays (``pose``, ``landmarks``, ``visibility``,
``expression``; each optional). Torch models and ONNX sessions both provide one.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from facemtl.contract import EXPRESSIONS, Predict, crop_face, landmarks_to_image
from facemtl.data.sample import Sample
from facemtl.data.transforms import face_box
from facemtl.geometry.pnp import fuse_poses, pose_and_std_from_landmarks
from facemtl.metrics import (accuracy, macro_f1, mean_signed_error, nme, occlusion_recall_at_precision, pitch_slope,
                             pose_mae, precision_recall_f1, std_calibration)


def protocol_crops(samples: Sequence[Sample], size: int, crop_scale: float) -> np.ndarray:
    """uint8 BGR crops (N, size, size, 3) of ``samples``, each around its face box (:func:`face_box`)."""
    return np.stack([crop_face(image, face_box(s, image), crop_scale, size)[0]
                     for s in samples for image in [s.load_image()]])


def predict_samples(predict: Predict, samples: Sequence[Sample], size: int, crop_scale: float,
                    batch_size: int = 64) -> dict[str, np.ndarray]:
    """Run ``predict`` on the protocol crops; the result holds the model's outputs, except that
    ``landmarks`` are decoded to image pixels (like :attr:`Sample.landmarks`)."""
    from facemtl.progress import Progress

    outputs: dict[str, list[np.ndarray]] = {}
    bar = Progress(len(samples), "eval", unit="img")
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        images = [s.load_image() for s in chunk]
        crops, mats = zip(*(crop_face(im, face_box(s, im), crop_scale, size) for s, im in zip(chunk, images)))
        out = predict(np.stack(crops))
        decoded = dict(out)  # the predictor's own dict keeps the contract's crop coordinates
        if "landmarks" in out:
            # In the predictor's dtype (float32) as the published figures were computed.
            decoded["landmarks"] = landmarks_to_image(np.asarray(out["landmarks"]), np.stack(mats), size)
            if "pose_std" in out:
                decoded.update(_second_opinion(decoded, chunk, images))
        for k, v in decoded.items():
            outputs.setdefault(k, []).append(np.asarray(v))
        bar.update(len(chunk))
    bar.close()
    return {k: np.concatenate(v) for k, v in outputs.items()}


def _second_opinion(decoded: dict[str, np.ndarray], samples: Sequence[Sample],
                    images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Pose from the predicted landmarks (PnP with the mean face, with its own deviation) and its
    inverse-variance fusion with the network's pose, for the faces that have a pose label."""
    lm_pose = np.full((len(samples), 3), np.nan)
    lm_std = np.full((len(samples), 3), np.nan)
    for i, (s, image) in enumerate(zip(samples, images)):
        if s.pose is not None:
            lm_pose[i], lm_std[i] = pose_and_std_from_landmarks(decoded["landmarks"][i], image.shape[1::-1])
    fused, _ = fuse_poses(decoded["pose"], decoded["pose_std"], lm_pose, lm_std)
    return {"pose_landmarks": lm_pose, "pose_fused": fused}


# |yaw| bins of the AFLW2000-3D protocol (3DDFA, Zhu et al. 2016): large poses are where methods differ.
YAW_BINS: tuple[tuple[int, int], ...] = ((0, 30), (30, 60), (60, 99))


def score(outputs: dict[str, np.ndarray], samples: Sequence[Sample]) -> dict[str, float]:
    """Every metric the labels allow: pose MAE and bias (±99° filter), NME, visibility, expression
    (accuracy, macro F1, recall per class); pose MAE and box-normalised NME per |yaw| bin
    (:data:`YAW_BINS`, keys ``n_yaw0_30``, ``mae_mean_yaw0_30``, ``nme_bbox_yaw0_30``, ...)."""
    result: dict[str, float] = {"n": float(len(samples))}
    posed = [i for i, s in enumerate(samples) if s.pose is not None]
    if "pose" in outputs and posed:
        gt = np.stack([samples[i].pose for i in posed])
        pred = outputs["pose"][posed]
        mae = pose_mae(pred, gt)
        bias = mean_signed_error(pred, gt)
        for k in ("yaw", "pitch", "roll", "mean"):
            result[f"mae_{k}"] = mae[k]
        for k in ("yaw", "pitch", "roll"):
            result[f"bias_{k}"] = bias[k]
        result["pitch_slope"] = pitch_slope(pred, gt)
        result["pose_n"] = mae["n"]
        result.update(_by_yaw(outputs, samples, posed))
        if "pose_std" in outputs:
            for k, v in std_calibration(pred, outputs["pose_std"][posed], gt).items():
                result[f"std_{k}"] = v
        # The second opinion (pose from the landmarks) alone and fused, where the outputs have it.
        for key in ("pose_landmarks", "pose_fused"):
            if key in outputs:
                found = np.isfinite(outputs[key][posed]).all(axis=1)  # PnP can fail
                other = pose_mae(outputs[key][posed][found], gt[found])
                for k in ("yaw", "pitch", "roll", "mean"):
                    result[f"mae_{k}_{key[5:]}"] = other[k]
    marked = [i for i, s in enumerate(samples) if s.landmarks is not None]
    if "landmarks" in outputs and marked:
        gt = np.stack([samples[i].landmarks for i in marked])
        errors = nme(outputs["landmarks"][marked], gt, norm="inter_ocular")
        result["nme_inter_ocular"] = float(np.nanmean(errors))
        errors = nme(outputs["landmarks"][marked], gt, norm="bbox")
        result["nme_bbox"] = float(np.nanmean(errors))
        # The 51 inner points alone: the jaw is the visible outline in 300-W-style labels (and in
        # facemtl's output) but fixed model vertices in AFLW2000-3D's and the renders'.
        inner = gt.copy()
        inner[:, :17] = np.nan
        result["nme_inner51"] = float(np.nanmean(nme(outputs["landmarks"][marked], inner, norm="inter_ocular")))
    seen = [i for i, s in enumerate(samples) if s.visibility is not None]
    if "visibility" in outputs and seen:
        vis = np.stack([samples[i].visibility for i in seen])
        recall, _ = occlusion_recall_at_precision(outputs["visibility"][seen], vis)
        result["occlusion_recall_at_p80"] = recall
    labelled = [i for i, s in enumerate(samples) if s.expression is not None]
    if "expression" in outputs and labelled:
        gt = np.array([samples[i].expression for i in labelled])
        pred = outputs["expression"][labelled].argmax(axis=1)
        result["expression_accuracy"] = accuracy(gt, pred)
        result["expression_macro_f1"] = macro_f1(gt, pred, len(EXPRESSIONS))
        # Accuracy hides a head that never predicts the rare classes: recall per class present.
        per_class = precision_recall_f1(gt, pred, len(EXPRESSIONS))
        for name, recall, support in zip(EXPRESSIONS, per_class["recall"], per_class["support"]):
            if support:
                result[f"expression_recall_{name}"] = float(recall)
    return result


def _by_yaw(outputs: dict[str, np.ndarray], samples: Sequence[Sample], posed: list[int]) -> dict[str, float]:
    """Pose MAE, the outward yaw error (+ = |yaw| read too large: a model reading turned faces short
    shows negative values) and, where there are landmarks, box NME of the posed samples per |yaw| bin."""
    out: dict[str, float] = {}
    yaw = np.abs([samples[i].pose[0] for i in posed])
    for lo, hi in YAW_BINS:
        idx = [i for i, y in zip(posed, yaw) if lo <= y < hi or (hi == YAW_BINS[-1][1] and y == hi)]
        key = f"yaw{lo}_{hi}"
        out[f"n_{key}"] = float(len(idx))
        if not idx:
            continue
        gt = np.stack([samples[i].pose for i in idx])
        out[f"mae_mean_{key}"] = pose_mae(outputs["pose"][idx], gt)["mean"]
        out[f"yaw_outward_{key}"] = float(np.mean(np.sign(gt[:, 0]) * (outputs["pose"][idx, 0] - gt[:, 0])))
        marked = [i for i in idx if samples[i].landmarks is not None]
        if "landmarks" in outputs and marked:
            gt = np.stack([samples[i].landmarks for i in marked])
            out[f"nme_bbox_{key}"] = float(np.nanmean(nme(outputs["landmarks"][marked], gt, norm="bbox")))
    return out


def evaluate(predict: Predict, samples: Sequence[Sample], size: int, crop_scale: float) -> dict[str, float]:
    """Predict on the protocol crops of ``samples`` and score them."""
    return score(predict_samples(predict, samples, size, crop_scale), samples)

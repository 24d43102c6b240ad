"""The evaluation protocol: crop each labelled face around its ground-truth box, predict, score.

Hopenet's AFLW2000 protocol crops around the ground-truth landmarks; facemtl crops every model
input the same way (``facemtl.data.transforms.crop_face`` around the tight landmark box, the
model's own ``crop_scale``), so the numbers are comparable across models and with inference.

``predict`` is any function from a uint8 BGR crop batch (N, S, S, 3) to the decoded outputs of
``docs/model-format.md`` as numpy arrays (``pose``, ``landmarks``, ``visibility``,
``expression``; each optional). Torch models and ONNX sessions both provide one.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from facemtl.data.sample import EXPRESSIONS, Sample
from facemtl.data.transforms import apply_affine, crop_face, invert_affine, landmark_box, tight_crop_box
from facemtl.metrics import (accuracy, macro_f1, mean_signed_error, nme, occlusion_recall_at_precision, pose_mae,
                             precision_recall_f1)

Predict = Callable[[np.ndarray], dict[str, np.ndarray]]


def face_box(sample: Sample, image: np.ndarray) -> np.ndarray:
    """The box the protocol crops around: the tight landmark box, else the sample's box, else
    (expression datasets of tight face crops) :func:`tight_crop_box` of the whole image."""
    if sample.landmarks is not None and np.isfinite(sample.landmarks).any():
        return landmark_box(sample.landmarks)
    if sample.box is not None:
        return np.asarray(sample.box, dtype=np.float64)
    return tight_crop_box(image.shape[1], image.shape[0])


def predict_samples(predict: Predict, samples: Sequence[Sample], size: int, crop_scale: float,
                    batch_size: int = 64) -> dict[str, np.ndarray]:
    """Run ``predict`` on the protocol crops; landmarks come back in image pixels."""
    from facemtl.progress import Progress

    outputs: dict[str, list[np.ndarray]] = {}
    bar = Progress(len(samples), "eval", unit="img")
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        images = [s.load_image() for s in chunk]
        crops, mats = zip(*(crop_face(im, face_box(s, im), crop_scale, size) for s, im in zip(chunk, images)))
        out = predict(np.stack(crops))
        if "landmarks" in out:
            crop_px = np.asarray(out["landmarks"]) * size - 0.5
            out["landmarks"] = apply_affine(crop_px, invert_affine(np.stack(mats)))
        for k, v in out.items():
            outputs.setdefault(k, []).append(np.asarray(v))
        bar.update(len(chunk))
    bar.close()
    return {k: np.concatenate(v) for k, v in outputs.items()}


def score(outputs: dict[str, np.ndarray], samples: Sequence[Sample]) -> dict[str, float]:
    """Every metric the labels allow: pose MAE and bias (±99° filter), NME, visibility, expression
    (accuracy, macro F1, recall per class)."""
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
        result["pose_n"] = mae["n"]
    marked = [i for i, s in enumerate(samples) if s.landmarks is not None]
    if "landmarks" in outputs and marked:
        gt = np.stack([samples[i].landmarks for i in marked])
        errors = nme(outputs["landmarks"][marked], gt, norm="inter_ocular")
        result["nme_inter_ocular"] = float(np.nanmean(errors))
        errors = nme(outputs["landmarks"][marked], gt, norm="bbox")
        result["nme_bbox"] = float(np.nanmean(errors))
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


def evaluate(predict: Predict, samples: Sequence[Sample], size: int, crop_scale: float) -> dict[str, float]:
    """Predict on the protocol crops of ``samples`` and score them."""
    return score(predict_samples(predict, samples, size, crop_scale), samples)

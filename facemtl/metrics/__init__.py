"""Evaluation metrics (pure numpy): pose, landmarks, visibility, classification, images, detection.

Each module documents its units, normalisation and what it excludes.
"""

from facemtl.metrics.classification import accuracy, confusion_matrix, macro_f1, precision_recall_f1
from facemtl.metrics.detection import average_precision, iou, match_detections, recall_at_score
from facemtl.metrics.image import psnr, ssim
from facemtl.metrics.landmarks import auc, ced_curve, failure_rate, nme, normaliser
from facemtl.metrics.pose import (geodesic_error, mean_signed_error, pitch_slope, pose_mae, std_calibration, std_scale,
                                  vector_errors, vector_mae)
from facemtl.metrics.visibility import occlusion_recall_at_precision, recall_at_precision

__all__ = [
    "accuracy", "confusion_matrix", "macro_f1", "precision_recall_f1",
    "average_precision", "iou", "match_detections", "recall_at_score",
    "psnr", "ssim",
    "auc", "ced_curve", "failure_rate", "nme", "normaliser",
    "geodesic_error", "mean_signed_error", "pitch_slope", "pose_mae", "std_calibration", "std_scale",
    "vector_errors", "vector_mae",
    "occlusion_recall_at_precision", "recall_at_precision",
]

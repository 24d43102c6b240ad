"""Inference with numpy, OpenCV and onnxruntime only (no torch): ``FaceAnalyzer`` and its results."""

from facemtl.infer.analyzer import FaceAnalyzer
from facemtl.infer.detector import available_detectors, create_detector
from facemtl.infer.results import Expression, Face, Pose

__all__ = ["Expression", "Face", "FaceAnalyzer", "Pose", "available_detectors", "create_detector"]

"""``python -m facemtl.tools.benchmark speed --split``: each network's runs inside the analyzer's call."""

from __future__ import annotations

import cv2
import numpy as np

from facemtl.infer.analyzer import FaceAnalyzer
from facemtl.infer.onnx_model import DEFAULT_MODEL
from facemtl.tools.benchmark import split

DEMO = DEFAULT_MODEL.parent / "demo.jpg"


def test_split_times_every_network_of_the_shipped_pair_and_restores_their_sessions():
    analyzer = FaceAnalyzer(threads=1)
    sessions = (analyzer.detector.session, analyzer.model.session, analyzer.expression_model.session)
    image = cv2.imread(str(DEMO))
    out = split(analyzer, image, repeats=3)
    assert set(out) == {"whole", "detector", "main", "expression", "rest"}
    assert all(out[k] > 0 for k in ("detector", "main", "expression"))
    # Medians of parts need not add up exactly, but the networks cannot take longer than the call.
    assert out["detector"] + out["main"] + out["expression"] < out["whole"] * 1.05
    assert (analyzer.detector.session, analyzer.model.session, analyzer.expression_model.session) == sessions
    assert len(analyzer(image)) == 3  # still the analyzer it was


def test_split_skips_a_detector_without_a_session():
    analyzer = FaceAnalyzer(threads=1, detector=lambda image: (np.array([[40.0, 30, 120, 130]]), np.array([0.9])),
                            expression_model=False)
    out = split(analyzer, np.full((160, 200, 3), 90, np.uint8), repeats=2)
    assert set(out) == {"whole", "main", "rest"}

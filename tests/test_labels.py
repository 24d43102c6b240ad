"""Annotation labels (issue 13.7): the expression is shown with its own probability, the
detector score is marked as such."""

from __future__ import annotations

import numpy as np

import facemtl.geometry.draw as draw
from facemtl.infer.predict import draw_faces
from facemtl.infer.results import Expression, Face
from facemtl.infer.tracking import TrackedFace
from facemtl.infer.video import annotate

NAMES = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry")


def face() -> Face:
    probs = np.array([0.2, 0.1, 0.1, 0.1, 0.05, 0.27, 0.18])
    return Face(box=np.array([20.0, 20, 80, 90]), score=0.9, expression=Expression("disgust", probs, NAMES))


def labels_drawn(monkeypatch, fn) -> list[str]:
    seen: list[str] = []
    original = draw.draw_box
    monkeypatch.setattr(draw, "draw_box", lambda img, box, label=None, **kw: (seen.append(label),
                                                                              original(img, box, label=label, **kw)))
    fn()
    return seen


def test_predict_label_shows_the_expression_probability(monkeypatch):
    image = np.zeros((120, 120, 3), np.uint8)
    [label] = labels_drawn(monkeypatch, lambda: draw_faces(image, [face()]))
    assert label.startswith("disgust 27% det 0.90")


def test_video_label_shows_id_expression_probability_and_score(monkeypatch):
    image = np.zeros((120, 120, 3), np.uint8)
    [label] = labels_drawn(monkeypatch, lambda: annotate(image, [TrackedFace(3, face(), True)]))
    assert label == "#3 disgust 27% det 0.90"


def test_label_without_expression():
    assert Face(box=np.array([0.0, 0, 1, 1]), score=0.5).label() == "det 0.50"

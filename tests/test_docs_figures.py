"""Docs drift (issue 13.8): figures name the model they were measured on; a figure stamped with
another model than the shipped one must say it is from an earlier model; the model card's
limits repeat its own measured table."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "docs" / "BENCHMARKS.md", REPO / "docs" / "MODEL_CARD.md"]
STAMP = re.compile(r"model `([0-9a-f]{8})`")


def shipped() -> str:
    return hashlib.sha256((REPO / "facemtl" / "assets" / "default.onnx").read_bytes()).hexdigest()[:8]


def test_stamped_figures_are_of_the_shipped_model():
    stale = []
    for doc in DOCS:
        for n, line in enumerate(doc.read_text().splitlines(), 1):
            for stamp in STAMP.findall(line):
                if stamp != shipped() and "earlier model" not in line:
                    stale.append(f"{doc.name}:{n}: measured on model {stamp}, the shipped one is {shipped()}")
    assert not stale, "re-measure (or mark 'earlier model'):\n" + "\n".join(stale)


def test_the_video_figures_are_stamped():
    text = (REPO / "docs" / "BENCHMARKS.md").read_text()
    for line in text.splitlines():
        if "scripts/bench_video.py" in line or "facemtl video ../shared" in line:
            assert STAMP.search(line), line


def test_model_card_limits_repeat_its_measured_nme():
    card = (REPO / "docs" / "MODEL_CARD.md").read_text()
    table = re.search(r"\| AFLW2000-3D dev \(.*?NME ([\d.]+) % inter-ocular", card).group(1)
    limits = re.search(r"\*\*Landmarks\*\*: ([\d.]+) % inter-ocular NME on AFLW2000", card).group(1)
    assert limits == table

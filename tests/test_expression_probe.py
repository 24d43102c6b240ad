"""The expression probe (``facemtl.tools.expression_probe``): a softmax probe on a main model's pooled
features, averaged into its ``expression`` output; every other output untouched."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx_stub import outputs

from facemtl.tools.expression_probe import attach, fit_softmax, probe_probabilities


def test_softmax_probe_separates_clouds_whatever_their_scales():
    """Three clouds in 12 dimensions on scales from 0.01 to 100 (the standardisation is folded into the
    weights), one ten times the others: weighted to equal shares, each is read as its own class."""
    rng = np.random.default_rng(0)
    scale = np.logspace(-2, 2, 12)
    centres = rng.normal(0, 2.0, (3, 12))
    sizes = (1000, 100, 100)
    x = np.concatenate([(rng.normal(c, 1.0, (n, 12))) * scale for c, n in zip(centres, sizes)])
    y = np.repeat(np.arange(3), sizes)
    W, b = fit_softmax(x, y, 1.0 / np.array(sizes)[y], 3)
    p = probe_probabilities(x, W, b)
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-9)
    for k in range(3):
        assert (p[y == k].argmax(1) == k).mean() > 0.95


def test_attach_averages_the_probe_into_expression_and_changes_nothing_else(tiny_main_onnx):
    from facemtl.tools.presence import feature_reader

    model = onnx.load(str(tiny_main_onnx))
    c = next(i for i in model.graph.initializer if i.name == "model.pose_head.fc.weight").dims[1]
    rng = np.random.default_rng(1)
    W, b = rng.normal(0, 0.3, (c, 7)), rng.normal(0, 0.5, 7)
    added = attach(model, W, b)
    crops = rng.integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    want, got = outputs(model, crops), outputs(added, crops)
    assert list(got) == list(want)  # same outputs, same order
    for name in want:
        if name != "expression":
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    probe = probe_probabilities(feature_reader(model)(crops)[:, 0], W, b)
    np.testing.assert_allclose(got["expression"], (want["expression"] + probe) / 2, rtol=1e-5, atol=1e-6)
    assert np.abs(got["expression"] - want["expression"]).max() > 1e-3
    with pytest.raises(ValueError, match="already has an expression probe"):
        attach(added, W, b)

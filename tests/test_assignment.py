"""The numpy Hungarian method against brute force and scipy (issue 13.5: inference without scipy)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from facemtl.infer.assignment import linear_sum_assignment


def brute_force(cost: np.ndarray) -> float:
    n, m = cost.shape
    if n <= m:
        return min(cost[np.arange(n), list(p)].sum() for p in itertools.permutations(range(m), n))
    return brute_force(cost.T)


@pytest.mark.parametrize("seed", range(60))
def test_optimal_on_random_matrices(seed):
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 6, size=2)
    cost = rng.normal(size=(n, m)) if seed % 3 else rng.integers(0, 3, size=(n, m)).astype(float)  # ties too
    rows, cols = linear_sum_assignment(cost)
    assert len(rows) == min(n, m) and len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
    assert np.all(np.diff(rows) > 0)
    assert cost[rows, cols].sum() == pytest.approx(brute_force(cost))


def test_matches_scipy_on_larger_matrices():
    scipy_opt = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(1)
    for n, m in [(12, 12), (7, 20), (20, 7), (30, 31)]:
        cost = rng.exponential(size=(n, m)) + (rng.random((n, m)) < 0.3) * 1e9  # "not allowed" pairs
        r, c = linear_sum_assignment(cost)
        r2, c2 = scipy_opt.linear_sum_assignment(cost)
        assert cost[r, c].sum() == pytest.approx(cost[r2, c2].sum())


def test_empty_and_bad_input():
    assert [len(a) for a in linear_sum_assignment(np.zeros((0, 3)))] == [0, 0]
    assert [len(a) for a in linear_sum_assignment(np.zeros((3, 0)))] == [0, 0]
    with pytest.raises(ValueError):
        linear_sum_assignment(np.array([[np.inf]]))

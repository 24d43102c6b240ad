"""Optimal one-to-one assignment (the Hungarian method), so that inference needs no scipy.

Same contract as ``scipy.optimize.linear_sum_assignment`` for finite costs; trackers match a
handful of faces per frame, where this O(n^2 m) pure-numpy loop takes microseconds.
"""

from __future__ import annotations

import numpy as np


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)`` of a minimum-cost matching of ``min(n, m)`` pairs of the (n, m) ``cost``
    matrix (finite values), rows ascending."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {cost.shape}")
    if not np.all(np.isfinite(cost)):
        raise ValueError("cost must be finite")
    if cost.shape[0] > cost.shape[1]:
        cols, rows = linear_sum_assignment(cost.T)
        order = np.argsort(rows)
        return rows[order], cols[order]
    n, m = cost.shape
    if n == 0:
        return np.zeros(0, int), np.zeros(0, int)
    # Shortest augmenting paths with row and column potentials u, v (1-based; column 0 is the
    # virtual start): after row i is added, every assigned pair has zero reduced cost.
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=int)  # row assigned to each column, 0 = none
    for i in range(1, n + 1):
        owner[0], j0 = i, 0
        dist, way, used = np.full(m + 1, np.inf), np.zeros(m + 1, dtype=int), np.zeros(m + 1, bool)
        while owner[j0] != 0:
            used[j0] = True
            i0 = owner[j0]
            free = ~used[1:]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < dist[1:])
            dist[1:][better], way[1:][better] = reduced[better], j0
            j1 = 1 + int(np.argmin(np.where(free, dist[1:], np.inf)))
            delta = dist[j1]
            u[owner[used]] += delta
            v[used] -= delta
            dist[1:][free] -= delta
            j0 = j1
        while j0:  # flip the augmenting path
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    cols = np.flatnonzero(owner[1:])
    rows = owner[1:][cols] - 1
    order = np.argsort(rows)
    return rows[order], cols[order]

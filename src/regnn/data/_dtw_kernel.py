"""numba kernel of the ``dtw`` neighbour method (kept apart so numba loads only when used)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, fastmath=True)
def dtw_sq(a: np.ndarray, b: np.ndarray, band: int) -> float:
    """Least total squared Euclidean frame cost over monotone warping paths within
    ``|i - j| <= band`` (a, b: (steps, C) float32). Equals ``tslearn.metrics.dtw(a, b,
    global_constraint="sakoe_chiba", sakoe_chiba_radius=band) ** 2`` for equal lengths."""
    n, m, c = a.shape[0], b.shape[0], a.shape[1]
    inf = np.inf
    prev = np.full(m + 1, inf)
    cur = np.full(m + 1, inf)
    prev[0] = 0.0
    for i in range(1, n + 1):
        cur[:] = inf
        lo = max(1, i - band)
        hi = min(m, i + band)
        for j in range(lo, hi + 1):
            cost = 0.0
            for k in range(c):
                diff = a[i - 1, k] - b[j - 1, k]
                cost += diff * diff
            best = prev[j - 1]
            if prev[j] < best:
                best = prev[j]
            if cur[j - 1] < best:
                best = cur[j - 1]
            cur[j] = cost + best
        prev, cur = cur, prev
    return prev[m]


@njit(parallel=True, cache=True)
def dtw_block(w: np.ndarray, start: int, stop: int, band: int, out: np.ndarray) -> None:
    """Fill ``out[i, j]`` (j > i) with :func:`dtw_sq` for rows ``start <= i < stop``."""
    n = w.shape[0]
    for i in prange(start, stop):
        for j in range(i + 1, n):
            out[i, j] = dtw_sq(w[i], w[j], band)

"""FRDist: the weighted three-group DTW of the REACT protocol, as one compiled kernel.

For a prediction ``x`` (n, 25) and a real reaction ``y`` (m, 25) the REACT distance is

    d(x, y) = dtw(x[:, 0:15], y[:, 0:15]) / 15 + dtw(x[:, 15:17], y[:, 15:17])
              + dtw(x[:, 17:25], y[:, 17:25]) / 8

where ``dtw`` is ``tslearn.metrics.dtw``: the square root of the least total squared
Euclidean frame distance over all monotone warping paths, with no band. Each group has its
own optimal path; the three dynamic programmes are run side by side in one sweep.

Speed comes from exact devices only, none of which changes a value:

* **One fused, compiled sweep.** The three groups' dynamic programmes run row by row in the
  same loop (three independent dependency chains keep the core busy), and each row's frame
  costs are computed first in one vectorised loop over the columns (float32 frame
  differences, as the official code casts its inputs; the cumulative costs are float64).
* **Early abandoning.** FRDist needs, per prediction, only the *minimum* distance over the
  appropriate set. Every warping path visits every row, and the cumulative cost never
  decreases along a path, so after row ``i`` the row minimum of group ``g``'s cumulative
  cost is a lower bound of that group's final squared distance. The weighted sum of the
  square roots of the three row minima is therefore a lower bound of ``d(x, y)`` (each
  group's bound holds for its own path; the weights are positive). Once it reaches the best
  distance found so far, the candidate cannot lower the minimum and is dropped. Rounding
  cannot break this: cumulative sums of non-negative costs are monotone in floating point,
  and ``sqrt`` is correctly rounded.
* **Best-first order.** When ``n == m`` the diagonal is a warping path, so each group's
  Euclidean distance is an upper bound of its DTW, and a cheap guess of it. Candidates are
  tried in order of that bound, so the likely minimum is computed first and the others are
  abandoned early. The result is bit-for-bit the minimum of the full search: an abandoned
  candidate's computed distance is provably no smaller than the minimum.
* **Parallel over (speaker, prediction) tasks** with ``numba.prange``; memory is one block
  of speakers at a time plus a few rows per thread (no cost matrix is ever stored).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

_G0_END = 15  # AU columns 0..14
_G1_END = 17  # valence, arousal 15..16
_NCOL = 25  # expression probabilities 17..24
W_AU = 1.0 / 15.0
W_AFFECT = 1.0
W_EXPRESSION = 1.0 / 8.0
GROUP_WEIGHTS = (W_AU, W_AFFECT, W_EXPRESSION)


_FM = {"nnan", "contract"}  # no NaN reaches the kernels (inputs are checked finite)


@njit(cache=True, nogil=True)
def _upper_bound(x, yT):
    """Weighted Euclidean distance along the main diagonal (a warping path when n == m)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    for t in range(x.shape[0]):
        for d in range(_G0_END):
            v = np.float64(x[t, d]) - np.float64(yT[d, t])
            s0 += v * v
        for d in range(_G0_END, _G1_END):
            v = np.float64(x[t, d]) - np.float64(yT[d, t])
            s1 += v * v
        for d in range(_G1_END, _NCOL):
            v = np.float64(x[t, d]) - np.float64(yT[d, t])
            s2 += v * v
    return W_AU * math.sqrt(s0) + W_AFFECT * math.sqrt(s1) + W_EXPRESSION * math.sqrt(s2)


@njit(cache=True, nogil=True, fastmath=_FM)
def _row_costs(xrow, yT, m, c0, c1, c2):
    """Squared frame distances of one prediction frame to every frame of ``y``, per group.

    The loop runs over the columns of ``yT`` (25, m), contiguous, so it vectorises.
    """
    for j in range(m):
        a = np.float32(0.0)
        for d in range(_G0_END):
            v = xrow[d] - yT[d, j]
            a += v * v
        c0[j] = a
        a = np.float32(0.0)
        for d in range(_G0_END, _G1_END):
            v = xrow[d] - yT[d, j]
            a += v * v
        c1[j] = a
        a = np.float32(0.0)
        for d in range(_G1_END, _NCOL):
            v = xrow[d] - yT[d, j]
            a += v * v
        c2[j] = a


@njit(cache=True, nogil=True, fastmath=_FM)
def _wdtw(x, yT, best, c0, c1, c2, P, Q):
    """Weighted three-group DTW of ``x`` (n, 25) and ``y`` given as ``yT`` (25, m), both
    float32. Returns the distance, or ``inf`` as soon as it is certain to be ``>= best``.
    ``c0, c1, c2`` (m,) float32 and ``P, Q`` (3, m) float64 are scratch rows.
    """
    n = x.shape[0]
    m = yT.shape[1]
    check = best < np.inf
    for i in range(n):
        _row_costs(x[i], yT, m, c0, c1, c2)
        if i == 0:
            a = 0.0
            b = 0.0
            e = 0.0
            for j in range(m):
                a += c0[j]
                b += c1[j]
                e += c2[j]
                Q[0, j] = a
                Q[1, j] = b
                Q[2, j] = e
            ma = Q[0, 0]
            mb = Q[1, 0]
            me = Q[2, 0]
        else:
            a = P[0, 0] + c0[0]
            b = P[1, 0] + c1[0]
            e = P[2, 0] + c2[0]
            Q[0, 0] = a
            Q[1, 0] = b
            Q[2, 0] = e
            ma = a
            mb = b
            me = e
            for j in range(1, m):
                a = c0[j] + min(a, min(P[0, j - 1], P[0, j]))
                b = c1[j] + min(b, min(P[1, j - 1], P[1, j]))
                e = c2[j] + min(e, min(P[2, j - 1], P[2, j]))
                Q[0, j] = a
                Q[1, j] = b
                Q[2, j] = e
                ma = min(ma, a)
                mb = min(mb, b)
                me = min(me, e)
        if check and i < n - 1:
            # every warping path of each group crosses row i: exact lower bound
            lb = W_AU * math.sqrt(ma) + W_AFFECT * math.sqrt(mb) + W_EXPRESSION * math.sqrt(me)
            if lb >= best:
                return np.inf
        P, Q = Q, P
    return (W_AU * math.sqrt(P[0, m - 1]) + W_AFFECT * math.sqrt(P[1, m - 1])
            + W_EXPRESSION * math.sqrt(P[2, m - 1]))


@njit(cache=True, nogil=True)
def weighted_dtw_pair(x, y):
    """Weighted three-group DTW of two (T, 25) float32 arrays (no early abandoning)."""
    yT = np.ascontiguousarray(y.T)
    m = y.shape[0]
    c0 = np.empty(m, np.float32)
    c1 = np.empty(m, np.float32)
    c2 = np.empty(m, np.float32)
    return _wdtw(np.ascontiguousarray(x), yT, np.inf, c0, c1, c2, np.empty((3, m)),
                 np.empty((3, m)))


@njit(cache=True, parallel=True)
def _min_dtw_kernel(pred, listT, cand_ptr, cand_idx, out, lazy):
    """For each speaker b of the block and each prediction i: the minimum weighted DTW
    between ``pred[b, i]`` and the listeners ``cand_idx[cand_ptr[b]:cand_ptr[b+1]]``.

    pred: (B, K, n, 25) float32; listT: (N, 25, m) float32; out: (B, K) float64.
    """
    B = pred.shape[0]
    K = pred.shape[1]
    n = pred.shape[2]
    m = listT.shape[2]
    for task in prange(B * K):
        b = task // K
        i = task - b * K
        lo = cand_ptr[b]
        nc = cand_ptr[b + 1] - lo
        if nc == 0:
            out[b, i] = np.nan
            continue
        x = pred[b, i]
        c0 = np.empty(m, np.float32)
        c1 = np.empty(m, np.float32)
        c2 = np.empty(m, np.float32)
        P = np.empty((3, m))
        Q = np.empty((3, m))
        order = np.arange(nc)
        best = np.inf
        if lazy and n == m and nc > 1:
            ub = np.empty(nc)
            for c in range(nc):
                ub[c] = _upper_bound(x, listT[cand_idx[lo + c]])
            order = np.argsort(ub)
        for c in range(nc):
            j = cand_idx[lo + order[c]]
            d = _wdtw(x, listT[j], best if lazy else np.inf, c0, c1, c2, P, Q)
            if d < best:
                best = d
        out[b, i] = best


def min_weighted_dtw(
    pred: np.ndarray, listener: np.ndarray, neighbours: np.ndarray, *,
    lazy: bool = True, block: int = 64, progress: bool = False,
) -> np.ndarray:
    """(N, K) array: for speaker k and prediction i, the least weighted DTW distance between
    ``pred[k, i]`` and an appropriate real reaction ``listener[j]`` (``neighbours[k, j]``).

    Exact: ``lazy`` only skips work that cannot change the minimum. Rows of ``neighbours``
    with no appropriate reaction give NaN. Works on blocks of ``block`` speakers so that at
    most one block is copied (when ``pred`` is not already C-contiguous float32).
    """
    N, K = pred.shape[:2]
    listT = np.ascontiguousarray(np.asarray(listener, dtype=np.float32).transpose(0, 2, 1))
    out = np.empty((N, K))
    starts = range(0, N, block)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="FRDist", unit="block", leave=False)
    for b0 in starts:
        b1 = min(N, b0 + block)
        chunk = np.ascontiguousarray(pred[b0:b1], dtype=np.float32)
        rows = np.asarray(neighbours[b0:b1]) != 0
        cand_ptr = np.zeros(b1 - b0 + 1, dtype=np.int64)
        np.cumsum(rows.sum(axis=1), out=cand_ptr[1:])
        cand_idx = np.nonzero(rows)[1].astype(np.int64)
        _min_dtw_kernel(chunk, listT, cand_ptr, cand_idx, out[b0:b1], lazy)
    return out


def set_threads(workers: int | None) -> int:
    """Set numba's thread count (``None``: all cores); return the previous count."""
    previous = numba.get_num_threads()
    if workers is not None:
        numba.set_num_threads(max(1, min(int(workers), numba.config.NUMBA_NUM_THREADS)))
    return previous

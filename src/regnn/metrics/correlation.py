"""FRCorr (max CCC over the appropriate set) and PCC, from one compiled kernel.

For a prediction ``x`` and a real reaction ``y`` (both (T, 25)), per column ``c``:

* ``r_c`` = Pearson correlation, clipped to [-1, 1], 0 where a column is constant (the
  official code maps the NaN of ``np.corrcoef`` to 0);
* ``ccc_c = 2 r_c s_x s_y / (s_x^2 + s_y^2 + (m_x - m_y)^2 + 1e-8)`` with population
  variances.

``CCC(x, y) = mean_c ccc_c`` and ``PCC(x, y) = mean_c r_c``. Both are computed in float64 from
column means and centred cross products; the work is parallel over (speaker, prediction).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_NCOL = 25


@njit(cache=True, nogil=True)
def _stats(seq, mean, ss):
    """Column means and centred sums of squares of a (T, 25) float32 sequence."""
    T = seq.shape[0]
    for c in range(_NCOL):
        mean[c] = 0.0
        ss[c] = 0.0
    for t in range(T):
        for c in range(_NCOL):
            mean[c] += seq[t, c]
    for c in range(_NCOL):
        mean[c] /= T
    for t in range(T):
        for c in range(_NCOL):
            v = seq[t, c] - mean[c]
            ss[c] += v * v


@njit(cache=True, parallel=True)
def _listener_stats(listener):
    N = listener.shape[0]
    means = np.empty((N, _NCOL))
    ss = np.empty((N, _NCOL))
    for j in prange(N):
        _stats(listener[j], means[j], ss[j])
    return means, ss


@njit(cache=True, parallel=True)
def _max_corr_kernel(pred, listener, lmean, lss, cand_ptr, cand_idx, out_ccc, out_pcc):
    """out_ccc[b, i] = max over candidates of CCC; out_pcc[b, i] = max of PCC."""
    B = pred.shape[0]
    K = pred.shape[1]
    T = pred.shape[2]
    for task in prange(B * K):
        b = task // K
        i = task - b * K
        x = pred[b, i]
        xm = np.empty(_NCOL)
        xss = np.empty(_NCOL)
        _stats(x, xm, xss)
        xc = np.empty((T, _NCOL))
        for t in range(T):
            for c in range(_NCOL):
                xc[t, c] = x[t, c] - xm[c]
        sxy = np.empty(_NCOL)
        best_ccc = -np.inf
        best_pcc = -np.inf
        for q in range(cand_ptr[b], cand_ptr[b + 1]):
            j = cand_idx[q]
            y = listener[j]
            for c in range(_NCOL):
                sxy[c] = 0.0
            for t in range(T):
                for c in range(_NCOL):
                    sxy[c] += xc[t, c] * (y[t, c] - lmean[j, c])
            ccc = 0.0
            pcc = 0.0
            for c in range(_NCOL):
                den = xss[c] * lss[j, c]
                r = 0.0
                if den > 0.0:
                    r = sxy[c] / math.sqrt(den)
                    r = min(1.0, max(-1.0, r))
                vx = xss[c] / T
                vy = lss[j, c] / T
                dm = xm[c] - lmean[j, c]
                ccc += 2.0 * r * math.sqrt(vx) * math.sqrt(vy) / (vx + vy + dm * dm + 1e-8)
                pcc += r
            ccc /= _NCOL
            pcc /= _NCOL
            if ccc > best_ccc:
                best_ccc = ccc
            if pcc > best_pcc:
                best_pcc = pcc
        out_ccc[b, i] = best_ccc
        out_pcc[b, i] = best_pcc


def max_correlations(pred: np.ndarray, listener: np.ndarray, neighbours: np.ndarray, *,
                     block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Two (N, K) arrays: the best CCC and the best PCC of each prediction over its
    speaker's appropriate set. Inputs are checked float32 arrays and a bool matrix."""
    N, K = pred.shape[:2]
    lmean, lss = _listener_stats(listener)
    ccc = np.empty((N, K))
    pcc = np.empty((N, K))
    for b0 in range(0, N, block):
        b1 = min(N, b0 + block)
        rows = neighbours[b0:b1]
        cand_ptr = np.zeros(b1 - b0 + 1, dtype=np.int64)
        np.cumsum(rows.sum(axis=1), out=cand_ptr[1:])
        cand_idx = np.nonzero(rows)[1].astype(np.int64)
        _max_corr_kernel(np.ascontiguousarray(pred[b0:b1]), listener, lmean, lss, cand_ptr,
                         cand_idx, ccc[b0:b1], pcc[b0:b1])
    return ccc, pcc

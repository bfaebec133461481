"""FRDiv, FRDvs and FRVar: diversity of the generated reactions (compiled, one pass each).

* FRDiv (official S-MSE): per speaker, the mean squared Euclidean distance between two of its
  K flattened predictions over ordered pairs ``i != i'``, divided by ``T * 25``; mean over
  speakers. Computed as ``2 K sum_i |P_ki - mean_i P_ki|^2 / (K (K-1) T 25)``, an identity,
  so K identical predictions give exactly 0.
* FRDvs: for each prediction index i, the same over ordered speaker pairs ``k != k'``; the
  grand total divided by ``N (N-1) K T 25``. Computed per flattened position from sums of
  values shifted by speaker 0's value (``2 N sum q^2 - 2 (sum q)^2``), in float64.
* FRVar: the mean over (speaker, prediction, column) of the unbiased variance over frames.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def _per_speaker(pred):
    """(div, var) per speaker: sum_i |P_ki - mean|^2 and sum over (i, c) of the unbiased
    variance over frames."""
    N, K, T, C = pred.shape
    div = np.zeros(N)
    var = np.zeros(N)
    for k in prange(N):
        mean = np.zeros((T, C))
        for i in range(K):
            for t in range(T):
                for c in range(C):
                    mean[t, c] += pred[k, i, t, c]
        for t in range(T):
            for c in range(C):
                mean[t, c] /= K
        d = 0.0
        for i in range(K):
            for t in range(T):
                for c in range(C):
                    v = pred[k, i, t, c] - mean[t, c]
                    d += v * v
        div[k] = d
        vsum = 0.0
        for i in range(K):
            for c in range(C):
                m = 0.0
                for t in range(T):
                    m += pred[k, i, t, c]
                m /= T
                s = 0.0
                for t in range(T):
                    v = pred[k, i, t, c] - m
                    s += v * v
                vsum += s / (T - 1)
        var[k] = vsum
    return div, var


@njit(cache=True, parallel=True)
def _across_speakers(pred, rows):
    """sum over positions (i, t, c) of 2 N sum_k q^2 - 2 (sum_k q)^2 with
    q = pred[k, i, t, c] - pred[0, i, t, c]; tasks are blocks of ``rows`` frames."""
    N, K, T, C = pred.shape
    nb = (T + rows - 1) // rows
    partial = np.zeros(K * nb)
    for task in prange(K * nb):
        i = task // nb
        t0 = (task - i * nb) * rows
        t1 = min(T, t0 + rows)
        s1 = np.zeros((t1 - t0, C))
        s2 = np.zeros((t1 - t0, C))
        for k in range(1, N):
            for t in range(t0, t1):
                for c in range(C):
                    q = np.float64(pred[k, i, t, c]) - np.float64(pred[0, i, t, c])
                    s1[t - t0, c] += q
                    s2[t - t0, c] += q * q
        tot = 0.0
        for t in range(t1 - t0):
            for c in range(C):
                tot += 2.0 * N * s2[t, c] - 2.0 * s1[t, c] * s1[t, c]
        partial[task] = tot
    return partial.sum()


def diversity_scores(pred: np.ndarray) -> dict[str, float]:
    """FRDiv, FRDvs and FRVar of a checked (N, K, T, 25) float32 array."""
    N, K, T, C = pred.shape
    div, var = _per_speaker(pred)
    fr_div = 0.0 if K < 2 else float(np.mean(2.0 * div / ((K - 1) * T * C)))
    fr_var = float(var.sum() / (N * K * C))
    if N < 2:
        fr_dvs = 0.0
    else:
        total = _across_speakers(pred, 32)
        fr_dvs = float(max(total, 0.0) / (N * (N - 1) * K) / (T * C))
    return {"FRDiv": fr_div, "FRDvs": fr_dvs, "FRVar": fr_var}

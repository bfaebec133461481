"""TLCC / Synchrony: the lag (in frames) at which a prediction best correlates with its speaker.

For lags ``-49 .. 49`` (2 s at 25 fps) and each of the 25 columns, the Pearson correlation of
the prediction and the speaker shifted against each other (lag > 0: ``pred[lag:]`` with
``speaker[:-lag]``; lag < 0: ``pred[:lag]`` with ``speaker[-lag:]``). The official code
averages the 25 float64 correlations as a float32 ``torch.Tensor`` and takes
``offset = 49 - argmax``; a window in which a column is constant has an undefined correlation
(NaN), which makes that lag's mean NaN, and ``torch.argmax`` picks the first NaN. Both rules
are kept exactly: the correlations come from one compiled kernel (window sums from prefix
sums, cross products vectorised over columns, exact constant-window detection), and the
averaging and arg-max are done by torch on float32 exactly as the official code does.

The score is the mean absolute offset over all (speaker, prediction) pairs, computed as a
float32 mean like the official ``compute_TLCC``. ``first_only=True`` reproduces the official
multi-process helper ``compute_TLCC_mp``, which (a defect) scores only prediction 0 of each
speaker; it exists so that numbers already published with it can be reproduced.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_NCOL = 25
MAX_LAG = 49  # int(seconds * fps - 1) with seconds = 2, fps = 25


@njit(cache=True, nogil=True)
def _run_end(seq, out):
    """out[t, c] = first index u > t with seq[u, c] != seq[t, c] (T if none)."""
    T = seq.shape[0]
    for c in range(_NCOL):
        out[T - 1, c] = T
        for t in range(T - 2, -1, -1):
            if seq[t, c] == seq[t + 1, c]:
                out[t, c] = out[t + 1, c]
            else:
                out[t, c] = t + 1


@njit(cache=True, nogil=True, fastmath={"reassoc", "nnan", "contract"})
def _dot(a, b):
    """Dot product of two equally long contiguous float64 vectors, vectorised (the sum is
    reassociated into SIMD lanes: the result differs from a serial sum only by rounding)."""
    acc = 0.0
    for t in range(a.shape[0]):
        acc += a[t] * b[t]
    return acc


@njit(cache=True, parallel=True)
def _tlcc_kernel(pred, speaker, pred_index, max_lag, out):
    """out[p, l, c]: Pearson correlation of column c at lag l - max_lag for prediction
    ``pred[pred_index[p, 0], pred_index[p, 1]]`` against its speaker (NaN if undefined)."""
    T = pred.shape[2]
    P = pred_index.shape[0]
    for p in prange(P):
        k = pred_index[p, 0]
        i = pred_index[p, 1]
        x = pred[k, i]
        s = speaker[k]
        # centre each column by its full-length mean (correlation is shift invariant; this
        # keeps the window sums well conditioned), stored column-major: each lag's cross
        # products are then 25 contiguous dot products
        xcT = np.empty((_NCOL, T))
        scT = np.empty((_NCOL, T))
        for c in range(_NCOL):
            mx = 0.0
            ms = 0.0
            for t in range(T):
                mx += x[t, c]
                ms += s[t, c]
            mx /= T
            ms /= T
            for t in range(T):
                xcT[c, t] = x[t, c] - mx
                scT[c, t] = s[t, c] - ms
        # prefix sums of values and squares
        px = np.zeros((T + 1, _NCOL))
        pxx = np.zeros((T + 1, _NCOL))
        ps = np.zeros((T + 1, _NCOL))
        pss = np.zeros((T + 1, _NCOL))
        for t in range(T):
            for c in range(_NCOL):
                px[t + 1, c] = px[t, c] + xcT[c, t]
                pxx[t + 1, c] = pxx[t, c] + xcT[c, t] * xcT[c, t]
                ps[t + 1, c] = ps[t, c] + scT[c, t]
                pss[t + 1, c] = pss[t, c] + scT[c, t] * scT[c, t]
        xend = np.empty((T, _NCOL), np.int64)
        send = np.empty((T, _NCOL), np.int64)
        _run_end(x, xend)
        _run_end(s, send)
        sxy = np.empty(_NCOL)
        for li in range(2 * max_lag + 1):
            lag = li - max_lag
            if lag >= 0:
                x0 = lag
                s0 = 0
            else:
                x0 = 0
                s0 = -lag
            L = T - abs(lag)
            for c in range(_NCOL):
                sxy[c] = _dot(xcT[c, x0:x0 + L], scT[c, s0:s0 + L])
            for c in range(_NCOL):
                if L < 2 or xend[x0, c] >= x0 + L or send[s0, c] >= s0 + L:
                    out[p, li, c] = np.nan  # a constant window: np.corrcoef gives NaN
                    continue
                sx = px[x0 + L, c] - px[x0, c]
                ss = ps[s0 + L, c] - ps[s0, c]
                vx = (pxx[x0 + L, c] - pxx[x0, c]) - sx * sx / L
                vs = (pss[s0 + L, c] - pss[s0, c]) - ss * ss / L
                cov = sxy[c] - sx * ss / L
                den = vx * vs
                if den > 0.0:
                    r = cov / math.sqrt(den)
                    out[p, li, c] = min(1.0, max(-1.0, r))
                else:
                    out[p, li, c] = 0.0 if cov == 0.0 else math.copysign(1.0, cov)


def tlcc_offsets(pred: np.ndarray, speaker: np.ndarray, *, first_only: bool = False,
                 max_lag: int = MAX_LAG, block: int = 2048) -> np.ndarray:
    """The absolute offsets (int64) of every scored prediction, in (speaker, prediction)
    order: all K per speaker, or only prediction 0 with ``first_only``."""
    import torch

    N, K, T = pred.shape[:3]
    if pred.shape[2] <= max_lag:
        raise ValueError(f"TLCC needs more than {max_lag} frames per sequence, got T = {T}")
    ks = np.arange(N)
    if first_only:
        index = np.stack([ks, np.zeros(N, dtype=np.int64)], axis=1)
    else:
        index = np.stack([np.repeat(ks, K), np.tile(np.arange(K), N)], axis=1)
    index = index.astype(np.int64)
    offsets = np.empty(len(index), dtype=np.int64)
    corr = np.empty((min(block, len(index)), 2 * max_lag + 1, _NCOL))
    for p0 in range(0, len(index), block):
        p1 = min(len(index), p0 + block)
        view = corr[: p1 - p0]
        _tlcc_kernel(pred, speaker, index[p0:p1], max_lag, view)
        # the official reduction: per lag a float32 torch mean of the 25 float64 values,
        # then torch.argmax (NaN counts as the largest value, first occurrence wins)
        means = torch.from_numpy(view.astype(np.float32)).mean(dim=-1)
        arg = torch.argmax(means, dim=-1).numpy()
        offsets[p0:p1] = np.abs(max_lag - arg)
    return offsets

"""FRDist: the weighted three-group DTW of the REACT protocol, as one compiled kernel.

For a prediction ``x`` (n, 25) and a real reaction ``y`` (m, 25) the REACT distance is

    d(x, y) = dtw(x[:, 0:15], y[:, 0:15]) / 15 + dtw(x[:, 15:17], y[:, 15:17])
              + dtw(x[:, 17:25], y[:, 17:25]) / 8

where ``dtw`` is ``tslearn.metrics.dtw``: the square root of the least total squared
Euclidean frame distance over all monotone warping paths, with no band. Each group has its
own optimal path and its own dynamic programme.

Speed comes from exact devices only, none of which changes a value:

* **Anti-diagonal sweep, vectorised.** The cells of one anti-diagonal ``i + j = k`` depend
  only on the two previous diagonals, never on each other, so each diagonal is one SIMD loop
  (two consecutive diagonals share one pass; a row-by-row sweep is a serial chain of ``min``
  and ``+`` along the row). The prediction is stored transposed and the listener transposed
  *and reversed in time*, with rows padded to a stride ``S`` that is a compile-time constant:
  along a diagonal both frames then advance contiguously, every attribute is a fixed offset,
  and the frame costs of four consecutive diagonals are computed in one pass that loads each
  prediction value once. Frame differences are float32 (as the official code casts its
  inputs), summed over the attributes in order; cumulative costs are float64.
* **Early abandoning.** FRDist needs, per prediction, only the *minimum* distance over the
  appropriate set. A warping step advances ``i + j`` by one or two, so every path crosses
  diagonal ``k`` or ``k + 1``; the cumulative cost never decreases along a path, so the least
  cumulative cost over those two diagonals is a lower bound of the group's final squared
  distance. The weights are positive, so the weighted sum of square roots with that bound
  in place of the group's value (and 0 for a group not yet computed) is a lower bound of
  ``d(x, y)``; every 32 diagonals it is compared with the best distance found so far, and
  once it reaches it the candidate cannot lower the minimum and is dropped. Rounding cannot
  break this: cumulative sums of non-negative costs are monotone in floating point, ``sqrt``
  is correctly rounded, and the bound is summed in the same order as the distance.
* **One group after the other, cheapest first.** The three groups' programmes are
  independent, so they run one after the other: valence/arousal (2 attributes, weight 1),
  then expressions (8, weight 1/8), then AUs (15, weight 1/15). A finished group's exact
  term joins the bound, so a candidate well above the best is usually dropped before the
  costly AU frame distances are computed (on reaction-like inputs this halves the time).
* **Best-first order.** When ``n == m`` the diagonal is a warping path, so each group's
  Euclidean distance is an upper bound of its DTW, and a cheap guess of it. Candidates are
  tried in order of that bound, so the likely minimum is computed first and the others are
  abandoned early. The result is bit-for-bit the minimum of the full search: an abandoned
  candidate's computed distance is provably no smaller than the minimum.
* **Parallel over (speaker, prediction) tasks** with ``numba.prange``; memory is one block
  of speakers at a time plus a few diagonals per thread (no cost matrix is ever stored).
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
_FM_DP = {"nnan", "contract", "nsz"}
_CHECK_EVERY = 32  # diagonals between two lower-bound checks (each check scans two diagonals)


_PAD = 8  # zero frames in front of each reversed listener row (read by the 4-diagonal pass)


_MIN_STRIDE = 776  # REACT clips (750 frames) and anything shorter share one compiled kernel


def padded_stride(n: int, m: int) -> int:
    """Row stride (in float32) of the transposed, padded sequences the kernel reads.

    Room for ``_PAD`` zeros in front and at least 8 behind; a multiple of 64 plus 8, so never
    a multiple of 1,024 floats (4 KiB): the 25 attribute rows do not share L1 cache sets. The
    stride is a compile-time constant of the kernel (each value compiles once, ~30 s, then
    lives in numba's disk cache), so every length up to 750 frames uses the same one.
    """
    return max(_MIN_STRIDE, (max(n, m) + 2 * _PAD + 63) // 64 * 64 + 8)


@njit(cache=True, nogil=True)
def _transpose_padded(x, out, S, reverse, front):
    """``out[d * S + front + t] = x[t, d]`` (``x[len - 1 - t, d]`` when ``reverse``); zeros
    elsewhere."""
    n = x.shape[0]
    out[:] = 0.0
    for t in range(n):
        src = n - 1 - t if reverse else t
        for d in range(_NCOL):
            out[d * S + front + t] = x[src, d]


@njit(cache=True, nogil=True)
def _upper_bound(xT, yR, n, S):
    """Weighted Euclidean distance along the main diagonal (a warping path when n == m).

    ``xT``/``yR`` as in :func:`_sweep`; ``y``'s frame ``t`` is ``yR[d * S + _PAD + n - 1 - t]``.
    """
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    for t in range(n):
        r = _PAD + n - 1 - t
        for d in range(_G0_END):
            v = np.float64(xT[d * S + t]) - np.float64(yR[d * S + r])
            s0 += v * v
        for d in range(_G0_END, _G1_END):
            v = np.float64(xT[d * S + t]) - np.float64(yR[d * S + r])
            s1 += v * v
        for d in range(_G1_END, _NCOL):
            v = np.float64(xT[d * S + t]) - np.float64(yR[d * S + r])
            s2 += v * v
    return W_AU * math.sqrt(s0) + W_AFFECT * math.sqrt(s1) + W_EXPRESSION * math.sqrt(s2)


@njit(cache=True, nogil=True, fastmath=_FM)
def _costs_au(xs, ys, cnt, cc, S):
    """Squared frame distances of the action units (attributes 0..14) on the cells of four
    consecutive anti-diagonals.

    Cell ``q`` of diagonal ``k + r`` (r = 0..3) pairs the frames ``xs[q + d * S]`` and
    ``ys[q + 3 - r + d * S]``, so each ``x`` value is loaded once for the four diagonals;
    ``cc[r * S + q]`` receives the cost. ``S`` is a compile-time constant
    (``numba.literally``): every access is a fixed offset from ``q``, so the loop vectorises
    over the cells. The sum runs over the attributes in order, in float32, as a row-by-row
    computation would.
    """
    numba.literally(S)
    for q in range(cnt):
        xv = xs[q]
        v0 = xv - ys[q + 3]
        v1 = xv - ys[q + 2]
        v2 = xv - ys[q + 1]
        v3 = xv - ys[q]
        s0 = v0 * v0
        s1 = v1 * v1
        s2 = v2 * v2
        s3 = v3 * v3
        xv = xs[q + S]
        v0 = xv - ys[q + 3 + S]
        v1 = xv - ys[q + 2 + S]
        v2 = xv - ys[q + 1 + S]
        v3 = xv - ys[q + S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 2 * S]
        v0 = xv - ys[q + 3 + 2 * S]
        v1 = xv - ys[q + 2 + 2 * S]
        v2 = xv - ys[q + 1 + 2 * S]
        v3 = xv - ys[q + 2 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 3 * S]
        v0 = xv - ys[q + 3 + 3 * S]
        v1 = xv - ys[q + 2 + 3 * S]
        v2 = xv - ys[q + 1 + 3 * S]
        v3 = xv - ys[q + 3 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 4 * S]
        v0 = xv - ys[q + 3 + 4 * S]
        v1 = xv - ys[q + 2 + 4 * S]
        v2 = xv - ys[q + 1 + 4 * S]
        v3 = xv - ys[q + 4 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 5 * S]
        v0 = xv - ys[q + 3 + 5 * S]
        v1 = xv - ys[q + 2 + 5 * S]
        v2 = xv - ys[q + 1 + 5 * S]
        v3 = xv - ys[q + 5 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 6 * S]
        v0 = xv - ys[q + 3 + 6 * S]
        v1 = xv - ys[q + 2 + 6 * S]
        v2 = xv - ys[q + 1 + 6 * S]
        v3 = xv - ys[q + 6 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 7 * S]
        v0 = xv - ys[q + 3 + 7 * S]
        v1 = xv - ys[q + 2 + 7 * S]
        v2 = xv - ys[q + 1 + 7 * S]
        v3 = xv - ys[q + 7 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 8 * S]
        v0 = xv - ys[q + 3 + 8 * S]
        v1 = xv - ys[q + 2 + 8 * S]
        v2 = xv - ys[q + 1 + 8 * S]
        v3 = xv - ys[q + 8 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 9 * S]
        v0 = xv - ys[q + 3 + 9 * S]
        v1 = xv - ys[q + 2 + 9 * S]
        v2 = xv - ys[q + 1 + 9 * S]
        v3 = xv - ys[q + 9 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 10 * S]
        v0 = xv - ys[q + 3 + 10 * S]
        v1 = xv - ys[q + 2 + 10 * S]
        v2 = xv - ys[q + 1 + 10 * S]
        v3 = xv - ys[q + 10 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 11 * S]
        v0 = xv - ys[q + 3 + 11 * S]
        v1 = xv - ys[q + 2 + 11 * S]
        v2 = xv - ys[q + 1 + 11 * S]
        v3 = xv - ys[q + 11 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 12 * S]
        v0 = xv - ys[q + 3 + 12 * S]
        v1 = xv - ys[q + 2 + 12 * S]
        v2 = xv - ys[q + 1 + 12 * S]
        v3 = xv - ys[q + 12 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 13 * S]
        v0 = xv - ys[q + 3 + 13 * S]
        v1 = xv - ys[q + 2 + 13 * S]
        v2 = xv - ys[q + 1 + 13 * S]
        v3 = xv - ys[q + 13 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 14 * S]
        v0 = xv - ys[q + 3 + 14 * S]
        v1 = xv - ys[q + 2 + 14 * S]
        v2 = xv - ys[q + 1 + 14 * S]
        v3 = xv - ys[q + 14 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        cc[q] = s0
        cc[q + S] = s1
        cc[q + 2 * S] = s2
        cc[q + 3 * S] = s3


@njit(cache=True, nogil=True, fastmath=_FM)
def _costs_affect(xs, ys, cnt, cc, S):
    """Squared frame distances of the valence and arousal (attributes 15..16) on the cells of four
    consecutive anti-diagonals: see :func:`_costs_au`."""
    numba.literally(S)
    for q in range(cnt):
        xv = xs[q + 15 * S]
        v0 = xv - ys[q + 3 + 15 * S]
        v1 = xv - ys[q + 2 + 15 * S]
        v2 = xv - ys[q + 1 + 15 * S]
        v3 = xv - ys[q + 15 * S]
        s0 = v0 * v0
        s1 = v1 * v1
        s2 = v2 * v2
        s3 = v3 * v3
        xv = xs[q + 16 * S]
        v0 = xv - ys[q + 3 + 16 * S]
        v1 = xv - ys[q + 2 + 16 * S]
        v2 = xv - ys[q + 1 + 16 * S]
        v3 = xv - ys[q + 16 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        cc[q] = s0
        cc[q + S] = s1
        cc[q + 2 * S] = s2
        cc[q + 3 * S] = s3


@njit(cache=True, nogil=True, fastmath=_FM)
def _costs_expression(xs, ys, cnt, cc, S):
    """Squared frame distances of the expression probabilities (attributes 17..24) on the
    cells of four consecutive anti-diagonals: see :func:`_costs_au`."""
    numba.literally(S)
    for q in range(cnt):
        xv = xs[q + 17 * S]
        v0 = xv - ys[q + 3 + 17 * S]
        v1 = xv - ys[q + 2 + 17 * S]
        v2 = xv - ys[q + 1 + 17 * S]
        v3 = xv - ys[q + 17 * S]
        s0 = v0 * v0
        s1 = v1 * v1
        s2 = v2 * v2
        s3 = v3 * v3
        xv = xs[q + 18 * S]
        v0 = xv - ys[q + 3 + 18 * S]
        v1 = xv - ys[q + 2 + 18 * S]
        v2 = xv - ys[q + 1 + 18 * S]
        v3 = xv - ys[q + 18 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 19 * S]
        v0 = xv - ys[q + 3 + 19 * S]
        v1 = xv - ys[q + 2 + 19 * S]
        v2 = xv - ys[q + 1 + 19 * S]
        v3 = xv - ys[q + 19 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 20 * S]
        v0 = xv - ys[q + 3 + 20 * S]
        v1 = xv - ys[q + 2 + 20 * S]
        v2 = xv - ys[q + 1 + 20 * S]
        v3 = xv - ys[q + 20 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 21 * S]
        v0 = xv - ys[q + 3 + 21 * S]
        v1 = xv - ys[q + 2 + 21 * S]
        v2 = xv - ys[q + 1 + 21 * S]
        v3 = xv - ys[q + 21 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 22 * S]
        v0 = xv - ys[q + 3 + 22 * S]
        v1 = xv - ys[q + 2 + 22 * S]
        v2 = xv - ys[q + 1 + 22 * S]
        v3 = xv - ys[q + 22 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 23 * S]
        v0 = xv - ys[q + 3 + 23 * S]
        v1 = xv - ys[q + 2 + 23 * S]
        v2 = xv - ys[q + 1 + 23 * S]
        v3 = xv - ys[q + 23 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        xv = xs[q + 24 * S]
        v0 = xv - ys[q + 3 + 24 * S]
        v1 = xv - ys[q + 2 + 24 * S]
        v2 = xv - ys[q + 1 + 24 * S]
        v3 = xv - ys[q + 24 * S]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        cc[q] = s0
        cc[q + S] = s1
        cc[q + 2 * S] = s2
        cc[q + 3 * S] = s3


@njit(cache=True, nogil=True, fastmath=_FM_DP)
def _diag_dp(c, up, diag, out, cnt):
    """``out[q] = c[q] + min(up[q], up[q + 1], diag[q])`` for one group and one diagonal."""
    for q in range(cnt):
        u = up[q]
        w = up[q + 1]
        u = u if u < w else w
        w = diag[q]
        u = u if u < w else w
        out[q] = np.float64(c[q]) + u


@njit(cache=True, nogil=True, fastmath=_FM_DP)
def _diag_dp2(c, c2, up, diag, out, out2, cnt):
    """Two consecutive diagonals of one group in one pass: diagonal ``k`` as in
    :func:`_diag_dp`, and for each of its cells the cell of diagonal ``k + 1`` in the same row,
    ``out2[q] = c2[q] + min(out[q - 1], out[q], up[q])``, whose two values of diagonal ``k``
    are still in registers (``out[-1]`` is the ``inf`` sentinel). Same operations, same
    values; about 40% fewer loads than two passes."""
    ap = np.inf
    for q in range(cnt):
        b0 = up[q]
        u = b0
        w = up[q + 1]
        u = u if u < w else w
        w = diag[q]
        u = u if u < w else w
        a = np.float64(c[q]) + u
        out[q] = a
        u2 = ap if ap < a else a
        u2 = u2 if u2 < b0 else b0
        out2[q] = np.float64(c2[q]) + u2
        ap = a


@njit(cache=True, nogil=True)
def _min_of(a, lo, hi):
    v = np.inf
    for t in range(lo, hi):
        if a[t] < v:
            v = a[t]
    return v


@njit(cache=True, nogil=True)
def _bound(g, m_g, sq_au, sq_affect, sq_expression):
    """The weighted distance with group ``g``'s squared DTW replaced by ``m_g``, summed in the
    order of the final distance (so a bound never exceeds the final value by rounding)."""
    if g == 0:
        sq_au = m_g
    elif g == 1:
        sq_affect = m_g
    else:
        sq_expression = m_g
    return (W_AU * math.sqrt(sq_au) + W_AFFECT * math.sqrt(sq_affect)
            + W_EXPRESSION * math.sqrt(sq_expression))


@njit(cache=True, nogil=True)
def _sweep(xT, yR, n, m, g, best, sq_au, sq_affect, sq_expression, buf, cc, S):
    """Squared DTW of attribute group ``g`` (0: AUs, 1: valence/arousal, 2: expressions) of
    ``x`` (n, 25) and ``y`` (m, 25), given as ``xT[d * S + i] = x[i, d]`` and
    ``yR[d * S + _PAD + t] = y[m - 1 - t, d]`` (rows padded to the stride ``S``); ``inf`` as
    soon as the weighted distance is certain to be ``>= best``.

    The dynamic programme runs over anti-diagonals ``k = i + j``: the cells of one diagonal do
    not depend on each other, so each diagonal is one vectorised loop; diagonals are done in
    pairs (:func:`_diag_dp2`), their frame costs four at a time. ``buf`` (4, n + 2) float64
    holds diagonal ``k`` in slot ``k % 4``, indexed by ``i + 1`` with ``inf`` sentinels;
    ``cc`` (4 * S,) float32 the costs of four diagonals. ``sq_*`` are the other groups'
    squared distances where known, else 0 (a lower bound).
    """
    numba.literally(S)
    inf = np.inf
    check = best < inf
    last = n + m - 2
    buf[:] = inf
    buf[2, 0] = 0.0  # slot of diagonal -2: D[-1, -1] = 0, the path starts at (0, 0)
    for k in range(0, last + 1, 2):
        # diagonals k and k + 1
        lo = max(0, k - m + 1)
        hi = min(k, n - 1)
        cnt = hi - lo + 1
        r = k % 4
        if r == 0:
            # costs of diagonals k..k + 3 over their union [lo, min(k + 3, n - 1)]; cell
            # (i, k - i) pairs x's frame i with y's frame k - i, yR's reversed frame i + m - 1 - k
            a0 = lo
            xs = xT[lo:]
            ys = yR[_PAD + lo + m - 4 - k:]
            span = min(k + 3, n - 1) - lo + 1
            if g == 0:
                _costs_au(xs, ys, span, cc, S)
            elif g == 1:
                _costs_affect(xs, ys, span, cc, S)
            else:
                _costs_expression(xs, ys, span, cc, S)
        base = r * S + lo - a0
        A = buf[r]  # diagonal k
        B = buf[(r + 3) % 4]  # k - 1
        C = buf[(r + 2) % 4]  # k - 2
        if k == last:  # a lone last diagonal: the cell (n - 1, m - 1)
            _diag_dp(cc[base:], B[lo:], C[lo:], A[lo + 1:], cnt)
            return A[n]
        A2 = buf[r + 1]  # diagonal k + 1
        lo2 = max(0, k + 2 - m)
        hi2 = min(k + 1, n - 1)
        A[lo] = inf  # row lo - 1 of diagonal k, read by the first cell of k + 1
        _diag_dp2(cc[base:], cc[base + S:], B[lo:], C[lo:], A[lo + 1:], A2[lo + 1:], cnt)
        if hi + 2 < n + 2:
            A[hi + 2] = inf
        if hi2 > hi:  # the row below diagonal k's last: only diagonal k + 1 has it
            A2[hi2 + 1] = cc[base + S + hi2 - lo] + min(A[hi2], B[hi2])
        A2[lo2] = inf  # row lo2 - 1 (when lo2 == lo + 1 the pass wrote a cell there)
        if hi2 + 2 < n + 2:
            A2[hi2 + 2] = inf
        if check and (k + 1) % _CHECK_EVERY == _CHECK_EVERY - 1 and k + 1 < last:
            # a step advances i + j by 1 or 2, so every path crosses diagonal k or k + 1
            mn = min(_min_of(A2, lo2 + 1, hi2 + 2), _min_of(A, lo + 1, hi + 2))
            if _bound(g, mn, sq_au, sq_affect, sq_expression) >= best:
                return inf
    return buf[last % 4, n]


@njit(cache=True, nogil=True)
def _wdtw(xT, yR, n, m, best, buf, cc, S):
    """Weighted three-group DTW of ``x`` and ``y`` (layout as in :func:`_sweep`), or ``inf``
    as soon as it is certain to be ``>= best``. The groups are done one after the other,
    cheapest frame costs first (valence/arousal: 2 attributes, weight 1; expressions: 8,
    weight 1/8; AUs: 15, weight 1/15): once a group is done its exact term joins the lower
    bound, so a candidate far from the best is usually dropped before its AU costs are
    computed."""
    numba.literally(S)
    inf = np.inf
    sq_affect = _sweep(xT, yR, n, m, 1, best, 0.0, 0.0, 0.0, buf, cc, S)
    if sq_affect == inf or _bound(1, sq_affect, 0.0, 0.0, 0.0) >= best:
        return inf
    sq_expression = _sweep(xT, yR, n, m, 2, best, 0.0, sq_affect, 0.0, buf, cc, S)
    if sq_expression == inf or _bound(2, sq_expression, 0.0, sq_affect, 0.0) >= best:
        return inf
    sq_au = _sweep(xT, yR, n, m, 0, best, 0.0, sq_affect, sq_expression, buf, cc, S)
    if sq_au == inf:
        return inf
    return (W_AU * math.sqrt(sq_au) + W_AFFECT * math.sqrt(sq_affect)
            + W_EXPRESSION * math.sqrt(sq_expression))


_ENTRY_POINTS: dict[tuple, object] = {}


def _literal_call(kernel, *args):
    """Call the numba dispatcher ``kernel``, whose last argument is a compile-time constant
    (``numba.literally``), without numba's per-call literal re-dispatch (~25 ms a call: it
    first tries to type the call with a plain integer and fails). The first call per argument
    types goes through the dispatcher (compiling or loading the disk cache); later calls go
    straight to the compiled specialisation's entry point."""
    argtypes = tuple(numba.typeof(a) for a in args[:-1])
    key = (kernel, argtypes, args[-1])
    entry = _ENTRY_POINTS.get(key)
    if entry is not None:
        return entry(*args)
    result = kernel(*args)
    wanted = (*argtypes, numba.types.literal(args[-1]))
    for sig, compiled in kernel.overloads.items():
        if tuple(sig) == wanted:
            _ENTRY_POINTS[key] = compiled.entry_point
            break
    return result


def weighted_dtw_pair(x: np.ndarray, y: np.ndarray) -> float:
    """Weighted three-group DTW of two (T, 25) arrays (cast to float32; no early abandoning):
    the search kernel with one prediction and one candidate."""
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    return float(min_weighted_dtw(x[None, None], y[None], np.ones((1, 1), bool), lazy=False)[0, 0])


@njit(cache=True, parallel=True)
def _min_dtw_kernel(pred, listR, m, cand_ptr, cand_idx, out, arg, lazy, S):
    """For each speaker b of the block and each prediction i: the minimum weighted DTW
    between ``pred[b, i]`` and the listeners ``cand_idx[cand_ptr[b]:cand_ptr[b+1]]``.

    pred: (B, K, n, 25) float32; listR: (N, 25 * S) float32, each listener (m frames)
    transposed, time-reversed and padded (see :func:`_sweep`); out: (B, K) float64; arg:
    (B, K) int64, the listener that reaches the minimum (-1 when there is no candidate).
    """
    numba.literally(S)
    B = pred.shape[0]
    K = pred.shape[1]
    n = pred.shape[2]
    for task in prange(B * K):
        b = task // K
        i = task - b * K
        lo = cand_ptr[b]
        nc = cand_ptr[b + 1] - lo
        if nc == 0:
            out[b, i] = np.nan
            arg[b, i] = -1
            continue
        xT = np.empty(_NCOL * S, np.float32)
        _transpose_padded(pred[b, i], xT, S, False, 0)
        buf = np.empty((4, n + 2))
        cc = np.empty(4 * S, np.float32)
        order = np.arange(nc)
        best = np.inf
        best_j = cand_idx[lo]
        if lazy and n == m and nc > 1:
            ub = np.empty(nc)
            for c in range(nc):
                ub[c] = _upper_bound(xT, listR[cand_idx[lo + c]], n, S)
            order = np.argsort(ub)
        for c in range(nc):
            j = cand_idx[lo + order[c]]
            d = _wdtw(xT, listR[j], n, m, best if lazy else np.inf, buf, cc, S)
            if d < best:
                best = d
                best_j = j
        out[b, i] = best
        arg[b, i] = best_j


def min_weighted_dtw(
    pred: np.ndarray, listener: np.ndarray, neighbours: np.ndarray, *,
    lazy: bool = True, block: int = 64, progress: bool = False, return_index: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """(N, K) array: for speaker k and prediction i, the least weighted DTW distance between
    ``pred[k, i]`` and an appropriate real reaction ``listener[j]`` (``neighbours[k, j]``).

    Exact: ``lazy`` only skips work that cannot change the minimum. Rows of ``neighbours``
    with no appropriate reaction give NaN. Works on blocks of ``block`` speakers so that at
    most one block is copied (when ``pred`` is not already C-contiguous float32).
    ``return_index=True`` also returns the (N, K) int64 index ``j`` of the listener reaching
    each minimum (the first in search order on a tie; -1 where there is no candidate).
    """
    N, K, n = pred.shape[:3]
    listener = np.asarray(listener, dtype=np.float32)
    m = listener.shape[1]
    S = padded_stride(n, m)
    # each listener transposed and reversed in time, rows padded to the stride S
    listR = np.zeros((listener.shape[0], _NCOL, S), dtype=np.float32)
    listR[:, :, _PAD:_PAD + m] = listener[:, ::-1, :].transpose(0, 2, 1)
    listR = listR.reshape(listener.shape[0], _NCOL * S)
    out = np.empty((N, K))
    arg = np.empty((N, K), dtype=np.int64)
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
        _literal_call(_min_dtw_kernel, chunk, listR, m, cand_ptr, cand_idx, out[b0:b1],
                      arg[b0:b1], lazy, S)
    return (out, arg) if return_index else out


def set_threads(workers: int | None) -> int:
    """Set numba's thread count (``None``: all cores); return the previous count."""
    previous = numba.get_num_threads()
    if workers is not None:
        numba.set_num_threads(max(1, min(int(workers), numba.config.NUMBA_NUM_THREADS)))
    return previous

"""Jitter, FRDivRatio and FRCov: this project's additions to the REACT metrics.

The REACT metrics can be gamed by the very failure a multiple-reaction generator is prone to:
one reaction per speaker plus per-frame noise scores a non-zero FRDiv (the noise differs
between the K samples) while every sample follows the same mode. These three scores look at
where the numbers come from. They are **not** part of the REACT protocol; published tables
do not have them.

* ``Jitter``: the mean absolute frame-to-frame change of the generated attributes divided by
  that of the real listener reactions of the same items (1.0 = as smooth as real faces;
  white noise added to a reaction gives far more than 1). "The same items": the real
  reactions appropriate for at least one scored speaker (with the full N x N matrix of a
  split, whose diagonal is 1, these are exactly the items' own listeners).
* ``FRDivRatio``: over the items with at least two appropriate reactions, the mean FRDiv
  (S-MSE) of the K generated reactions divided by the mean S-MSE among each item's real
  appropriate reactions (the same formula with the n_k real reactions in place of the K
  generated ones). 0 when the K samples are identical; about 1 when they differ as much as
  the real appropriate reactions do.
* ``FRCov`` (mode coverage): for each speaker with at least two appropriate reactions, the
  fraction of them that are the nearest (by FRDist's weighted DTW) to at least one of the K
  generated reactions; mean over those speakers. K identical samples cover ``1 / n_k``; K
  samples drawn from the appropriate set itself cover all of it.

Each is NaN where it is undefined (no item with two appropriate reactions, or real
reactions that never change).
"""

from __future__ import annotations

import numpy as np


def mean_abs_change(x: np.ndarray) -> float:
    """Mean ``|x[..., t + 1, :] - x[..., t, :]|`` over every sequence and attribute of
    ``x (..., T, C)``, accumulated in float64 one leading index at a time."""
    x = np.asarray(x)
    flat = x.reshape(-1, *x.shape[-2:])
    if flat.shape[1] < 2 or flat.shape[0] == 0:
        return float("nan")
    total = 0.0
    for start in range(0, flat.shape[0], 64):  # bounded float64 temporaries
        chunk = flat[start:start + 64].astype(np.float64)
        total += float(np.abs(np.diff(chunk, axis=1)).sum())
    return total / (flat.shape[0] * (flat.shape[1] - 1) * flat.shape[2])


def jitter(pred: np.ndarray, listener: np.ndarray, neighbours: np.ndarray) -> float:
    """Jitter of ``pred (N, K, T, C)`` against the real reactions ``listener (M, T', C)``
    appropriate for at least one of the N speakers (``neighbours (N, M)``)."""
    used = np.asarray(neighbours, dtype=bool).any(axis=0)
    real = mean_abs_change(np.asarray(listener)[used])
    if not np.isfinite(real) or real <= 0.0:
        return float("nan")
    return mean_abs_change(pred) / real


def set_s_mse(x: np.ndarray) -> float:
    """The S-MSE of a set ``x (n, T, C)`` (REACT's FRDiv for one speaker): the mean squared
    distance between two of its flattened members over ordered pairs, divided by ``T C``."""
    n = x.shape[0]
    if n < 2:
        return 0.0
    x64 = x.reshape(n, -1).astype(np.float64)
    dev = x64 - x64.mean(axis=0)
    return float(2.0 * n * np.square(dev).sum() / (n * (n - 1) * x64.shape[1]))


def multi_items(neighbours: np.ndarray) -> np.ndarray:
    """Indices of the speakers (rows) with at least two appropriate reactions."""
    return np.flatnonzero(np.asarray(neighbours, dtype=bool).sum(axis=1) >= 2)


def fr_div_ratio(pred: np.ndarray, listener: np.ndarray, neighbours: np.ndarray) -> float:
    """FRDivRatio: mean generated S-MSE over mean real S-MSE, both over the items with at
    least two appropriate reactions."""
    nb = np.asarray(neighbours, dtype=bool)
    rows = multi_items(nb)
    if rows.size == 0:
        return float("nan")
    lis = np.asarray(listener)
    gen = np.mean([set_s_mse(np.asarray(pred[k])) for k in rows])
    real = np.mean([set_s_mse(lis[nb[k]]) for k in rows])
    return float(gen / real) if real > 0 else float("nan")


def fr_cov_from_nearest(nearest: np.ndarray, neighbours: np.ndarray) -> float:
    """FRCov from ``nearest (N, K)``, the index of the appropriate reaction nearest to each
    generated one (as :func:`regnn.metrics.dtw.min_weighted_dtw` returns it)."""
    nb = np.asarray(neighbours, dtype=bool)
    rows = multi_items(nb)
    if rows.size == 0:
        return float("nan")
    fractions = []
    for k in rows:
        hit = np.unique(nearest[k][nearest[k] >= 0])
        fractions.append(np.count_nonzero(nb[k, hit]) / np.count_nonzero(nb[k]))
    return float(np.mean(fractions))


def coverage_scores(pred: np.ndarray, listener: np.ndarray, neighbours: np.ndarray,
                    nearest: np.ndarray) -> dict[str, float]:
    """The three scores of a checked ``pred (N, K, T, 25)`` given FRDist's ``nearest``."""
    return {
        "Jitter": jitter(pred, listener, neighbours),
        "FRDivRatio": fr_div_ratio(pred, listener, neighbours),
        "FRCov": fr_cov_from_nearest(nearest, neighbours),
    }

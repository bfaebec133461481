"""FRCorr / FRDist on a validation subset, for monitoring inside training.

Uses :mod:`regnn.metrics` (the official-semantics implementation) when it is installed and
accepts a subset of speakers (``neighbours`` of shape ``(n_subset, N)``); otherwise a plain
implementation of the same definitions (``react-protocol.md`` section 4) is used. Both
score predictions ``pred (n, K, T, 25)`` of a subset of speakers against every listener of
the split, with ``neighbours[k, j]`` = listener j appropriate for subset speaker k.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from regnn.errors import RegnnError


def ccc(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean-over-columns CCC of ``x (..., T, C)`` against ``y (..., T, C)`` (broadcasting)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mx, my = x.mean(-2, keepdims=True), y.mean(-2, keepdims=True)
    dx, dy = x - mx, y - my
    vx, vy = (dx**2).mean(-2), (dy**2).mean(-2)
    cov = (dx * dy).mean(-2)
    sx, sy = np.sqrt(vx), np.sqrt(vy)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.nan_to_num(cov / (sx * sy), nan=0.0, posinf=0.0, neginf=0.0)
    r = np.clip(r, -1.0, 1.0)
    c = 2 * r * sx * sy / (vx + vy + (mx[..., 0, :] - my[..., 0, :]) ** 2 + 1e-8)
    return c.mean(-1)


@njit(cache=True)
def _dtw(x: np.ndarray, y: np.ndarray) -> float:  # pragma: no cover - compiled
    n, m = x.shape[0], y.shape[0]
    prev = np.full(m + 1, np.inf)
    cur = np.full(m + 1, np.inf)
    prev[0] = 0.0
    for i in range(1, n + 1):
        cur[0] = np.inf
        for j in range(1, m + 1):
            d = 0.0
            for c in range(x.shape[1]):
                t = x[i - 1, c] - y[j - 1, c]
                d += t * t
            best = prev[j - 1]
            if prev[j] < best:
                best = prev[j]
            if cur[j - 1] < best:
                best = cur[j - 1]
            cur[j] = d + best
        prev, cur = cur, prev
    return np.sqrt(prev[m])


def weighted_dtw(x: np.ndarray, y: np.ndarray) -> float:
    """``dtw(AU)/15 + dtw(affect) + dtw(expressions)/8`` (float32 inputs, as tslearn)."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    y = np.asarray(y, dtype=np.float32).astype(np.float64)
    return (_dtw(x[:, :15], y[:, :15]) / 15.0 + _dtw(x[:, 15:17], y[:, 15:17])
            + _dtw(x[:, 17:], y[:, 17:]) / 8.0)


def _plain_scores(pred: np.ndarray, listeners: np.ndarray, neighbours: np.ndarray
                  ) -> dict[str, float]:
    corr, dist = [], []
    for k in range(pred.shape[0]):
        app = listeners[np.flatnonzero(neighbours[k])]
        c = ccc(pred[k][:, None], app[None])  # (K, m)
        corr.append(c.max(axis=1).sum())
        dist.append(sum(min(weighted_dtw(p, a) for a in app) for p in pred[k]))
    return {"FRCorr": float(np.mean(corr)), "FRDist": float(np.mean(dist))}


def subset_scores(pred: np.ndarray, listeners: np.ndarray, neighbours: np.ndarray
                  ) -> dict[str, float]:
    """FRCorr (higher is better) and FRDist (lower is better) of a speaker subset."""
    neighbours = np.asarray(neighbours, dtype=bool)
    try:
        from regnn.metrics import fr_corr, fr_dist  # type: ignore[attr-defined]

        return {"FRCorr": float(fr_corr(pred, listeners, neighbours)),
                "FRDist": float(fr_dist(pred, listeners, neighbours))}
    except (ImportError, RegnnError, ValueError, TypeError, IndexError, AssertionError):
        return _plain_scores(pred, listeners, neighbours)

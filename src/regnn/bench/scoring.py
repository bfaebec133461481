"""Scoring a system's predictions with every REACT metric (``react-protocol.md`` section 4).

:func:`score` calls the metrics library (``regnn.metrics.compute_all``) when it is installed;
otherwise it falls back to the plain implementations below, which follow the same
definitions but are slower and have no FRRea (reported as NaN). ``scores["engine"]`` says
which one produced the numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

METRICS = ("FRDist", "FRCorr", "PCC", "FRRea", "FRVar", "FRDvs", "FRDiv", "Synchrony")
LOWER_IS_BETTER = {"FRDist", "FRRea", "Synchrony"}
FAMILIES = {
    "appropriateness": ("FRDist", "FRCorr", "PCC"),
    "diversity": ("FRVar", "FRDvs", "FRDiv"),
    "realism": ("FRRea",),
    "synchrony": ("Synchrony",),
}


def score(pred: np.ndarray, speakers: np.ndarray, listeners: np.ndarray,
          neighbours: np.ndarray) -> dict[str, Any]:
    """Every metric of ``pred (N, K, T, 25)`` against the split's real listener reactions."""
    pred = np.asarray(pred, dtype=np.float32)
    try:
        from regnn.metrics import compute_all  # type: ignore[attr-defined]
    except ImportError:
        compute_all = None
    if compute_all is not None:
        out = dict(compute_all(pred, speaker=speakers, listener=listeners,
                               neighbours=neighbours))
        out.setdefault("engine", "regnn.metrics")
        return _canonical(out)
    return plain_scores(pred, speakers, listeners, neighbours)


def _canonical(out: dict[str, Any]) -> dict[str, Any]:
    aliases = {"FRC": "FRCorr", "FRD": "FRDist", "S-MSE": "FRDiv", "TLCC": "Synchrony",
               "FRSyn": "Synchrony"}
    res: dict[str, Any] = {aliases.get(k, k): v for k, v in out.items()}
    for m in METRICS:
        res.setdefault(m, float("nan"))
    return res


# ---------------------------------------------------------------------------- fallback
def _pearson_cols(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-column Pearson r of ``x (..., T, C)`` and ``y (..., T, C)``; NaN where undefined."""
    dx = x - x.mean(-2, keepdims=True)
    dy = y - y.mean(-2, keepdims=True)
    num = (dx * dy).sum(-2)
    den = np.sqrt((dx**2).sum(-2) * (dy**2).sum(-2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def fr_div(pred: np.ndarray) -> float:
    N, K = pred.shape[:2]
    if K < 2:
        return 0.0
    flat = pred.reshape(N, K, -1).astype(np.float64)
    total = np.zeros(N)
    for i in range(K):  # exact differences (identical reactions give exactly 0)
        total += ((flat - flat[:, i:i + 1]) ** 2).sum((1, 2))
    return float((total / (K * (K - 1) * flat.shape[-1])).mean())


def fr_dvs(pred: np.ndarray) -> float:
    N, K = pred.shape[:2]
    if N < 2:
        return 0.0
    flat = pred.reshape(N, K, -1).astype(np.float64)
    total = 0.0
    for n in range(N):
        total += float(((flat - flat[n:n + 1]) ** 2).sum())
    return float(total / (N * (N - 1) * K) / flat.shape[-1])


def fr_var(pred: np.ndarray) -> float:
    return float(pred.astype(np.float64).var(axis=2, ddof=1).mean())


def pcc(pred: np.ndarray, listeners: np.ndarray, neighbours: np.ndarray) -> float:
    vals = []
    for k in range(pred.shape[0]):
        app = listeners[np.flatnonzero(neighbours[k])].astype(np.float64)
        r = np.nan_to_num(_pearson_cols(pred[k].astype(np.float64)[:, None], app[None]))
        vals.append(r.mean(-1).max(-1))  # (K,)
    return float(np.mean(np.concatenate(vals)))


def synchrony(pred: np.ndarray, speakers: np.ndarray, max_lag: int = 49) -> float:
    offsets = []
    for k in range(pred.shape[0]):
        s = speakers[k].astype(np.float64)
        for p in pred[k].astype(np.float64):
            corr = np.empty(2 * max_lag + 1, dtype=np.float32)
            for n, lag in enumerate(range(-max_lag, max_lag + 1)):
                if lag > 0:
                    a, b = p[lag:], s[:-lag]
                elif lag < 0:
                    a, b = p[:lag], s[-lag:]
                else:
                    a, b = p, s
                corr[n] = np.float32(_pearson_cols(a, b).mean())
            nan = np.flatnonzero(np.isnan(corr))
            best = int(nan[0]) if nan.size else int(np.argmax(corr))
            offsets.append(abs(max_lag - best))
    return float(np.mean(offsets))


def plain_scores(pred: np.ndarray, speakers: np.ndarray, listeners: np.ndarray,
                 neighbours: np.ndarray) -> dict[str, Any]:
    """All metrics but FRRea with the plain definitions (see the module doc)."""
    from regnn.validation import _plain_scores

    neighbours = np.asarray(neighbours, dtype=bool)
    out: dict[str, Any] = dict(_plain_scores(pred, listeners, neighbours))
    out.update({
        "PCC": pcc(pred, listeners, neighbours), "FRRea": float("nan"),
        "FRVar": fr_var(pred), "FRDvs": fr_dvs(pred), "FRDiv": fr_div(pred),
        "Synchrony": synchrony(pred, speakers), "engine": "plain",
    })
    return out

"""Scoring a system's predictions with every REACT metric (``react-protocol.md`` section 4).

:func:`score` calls :func:`regnn.metrics.compute_all` and names the results as the paper's
tables do (TLCC is the paper's "Synchrony").
"""

from __future__ import annotations

from typing import Any

import numpy as np

METRICS = ("FRDist", "FRCorr", "PCC", "FRRea", "FRVar", "FRDvs", "FRDiv", "Synchrony")
#: this project's additions (regnn.metrics.coverage): not in the paper's tables
EXTRA = ("Jitter", "FRDivRatio", "FRCov")
LOWER_IS_BETTER = {"FRDist", "FRRea", "Synchrony"}
CLOSEST_TO_ONE = {"Jitter", "FRDivRatio"}
FAMILIES = {
    "appropriateness": ("FRDist", "FRCorr", "PCC"),
    "diversity": ("FRVar", "FRDvs", "FRDiv"),
    "realism": ("FRRea",),
    "synchrony": ("Synchrony",),
}


def score(pred: np.ndarray, speakers: np.ndarray, listeners: np.ndarray,
          neighbours: np.ndarray) -> dict[str, Any]:
    """Every metric of ``pred (N, K, T, 25)`` against the split's real listener reactions."""
    from regnn.metrics import compute_all

    pred = np.asarray(pred, dtype=np.float32)
    out = dict(compute_all(pred, speakers, listeners, neighbours))
    out["engine"] = "regnn.metrics"
    return _canonical(out)


def _canonical(out: dict[str, Any]) -> dict[str, Any]:
    aliases = {"FRC": "FRCorr", "FRD": "FRDist", "S-MSE": "FRDiv", "TLCC": "Synchrony",
               "FRSyn": "Synchrony"}
    res: dict[str, Any] = {aliases.get(k, k): v for k, v in out.items()}
    for m in (*METRICS, *EXTRA):
        res.setdefault(m, float("nan"))
    return res

"""Scoring a system's predictions with every metric (``react-protocol.md`` section 4).

:func:`score` calls :func:`regnn.metrics.compute_all`; the bench's columns are the paper's
(:data:`regnn.metrics.catalogue.PAPER_ORDER`) then this project's additions, under the
catalogue's keys (tables print the paper's names, e.g. "Synchrony" for TLCC).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from regnn.metrics.catalogue import METRICS as _CATALOGUE
from regnn.metrics.catalogue import PAPER_ORDER, canonical

#: the paper's Table I / II columns
METRICS: tuple[str, ...] = PAPER_ORDER
#: this project's additions (regnn.metrics.coverage): not in the paper's tables
EXTRA: tuple[str, ...] = tuple(m.key for m in _CATALOGUE if not m.react)


def score(pred: np.ndarray, speakers: np.ndarray, listeners: np.ndarray,
          neighbours: np.ndarray) -> dict[str, Any]:
    """Every metric of ``pred (N, K, T, 25)`` against the split's real listener reactions."""
    from regnn.metrics import compute_all

    pred = np.asarray(pred, dtype=np.float32)
    out = dict(compute_all(pred, speakers, listeners, neighbours))
    out["engine"] = "regnn.metrics"
    return canonical_record(out)


def canonical_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with metric names as catalogue keys (records of older runs said
    ``Synchrony``) and every bench column present (NaN where not measured)."""
    res: dict[str, Any] = {(canonical(k) or k): v for k, v in record.items()}
    for m in (*METRICS, *EXTRA):
        res.setdefault(m, float("nan"))
    return res

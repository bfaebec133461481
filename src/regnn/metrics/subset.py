"""FRCorr / FRDist on a validation subset, for monitoring inside training.

Scores predictions ``pred (n, K, T, 25)`` of a subset of speakers against every listener of
the split, with ``neighbours[k, j]`` = listener j appropriate for subset speaker k, through
:mod:`regnn.metrics` (the official semantics of ``react-protocol.md`` section 4).
"""

from __future__ import annotations

import numpy as np


def subset_scores(pred: np.ndarray, listeners: np.ndarray, neighbours: np.ndarray
                  ) -> dict[str, float]:
    """FRCorr (higher is better) and FRDist (lower is better) of a speaker subset."""
    from regnn.metrics import fr_corr, fr_dist

    neighbours = np.asarray(neighbours, dtype=bool)
    return {"FRCorr": float(fr_corr(pred, listeners, neighbours)),
            "FRDist": float(fr_dist(pred, listeners, neighbours))}

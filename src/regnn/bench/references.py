"""The REACT challenge's trivial references, as predictions ``(N, K, T, 25)``.

* ``GT``: every prediction is the item's real listener reaction (K identical copies);
* ``Random``: every frame drawn independently and uniformly inside the attribute ranges
  (expression probabilities: uniform draws renormalised to sum 1), seeded;
* ``Mime``: the listener copies the speaker (K copies of the speaker's attributes);
* ``MeanSeq``: the frame-wise mean of the training split's listener reactions, for everybody;
* ``MeanFr``: the mean frame of the training split's listener reactions, held for all frames.

They need no training; their scores bracket the systems' (GT is the best a system can hope
for on appropriateness; Random, MeanSeq and MeanFr show what no information gives).
"""

from __future__ import annotations

import numpy as np

from regnn import schema

REFERENCES = ("GT", "Random", "Mime", "MeanSeq", "MeanFr")


def reference_predictions(name: str, speakers: np.ndarray, listeners: np.ndarray,
                          train_listeners: np.ndarray, k: int = 10, seed: int = 0
                          ) -> np.ndarray:
    """Predictions of reference ``name`` for a split: ``(N, k, T, 25)`` float32."""
    N, T, C = listeners.shape
    if name == "GT":
        base = listeners
    elif name == "Mime":
        base = speakers
    elif name == "MeanSeq":
        base = np.broadcast_to(train_listeners.mean(0), (N, T, C))
    elif name == "MeanFr":
        base = np.broadcast_to(train_listeners.reshape(-1, C).mean(0), (N, T, C))
    elif name == "Random":
        rng = np.random.default_rng(seed)
        u = rng.random((N, k, T, C), dtype=np.float32)
        out = schema.LOW + u * (schema.HIGH - schema.LOW)
        return schema.clip_to_ranges(out)
    else:
        raise ValueError(f"unknown reference {name!r}; expected one of {REFERENCES}")
    out = np.broadcast_to(np.asarray(base, dtype=np.float32)[:, None], (N, k, T, C))
    return schema.clip_to_ranges(np.ascontiguousarray(out))

"""The REACT metric suite, with the numbers of the official REACT code and compiled kernels.

Inputs (NumPy arrays or torch tensors): ``pred`` (N, K, T, 25) generated reactions, K per
speaker item; ``speaker`` and ``listener`` (N, T, 25), ``listener[j]`` being item j's real
listener reaction; ``neighbours`` (N, N) 0/1, ``neighbours[k, j] = 1`` when listener j's real
reaction is appropriate for speaker k. The listener set may also be larger than the scored
speakers (a subset of speakers scored against all M listeners of a split): ``listener``
(M, T, 25) with ``neighbours`` (N, M). Semantics: ``docs/react-protocol.md`` section 4.

====== ==================================================== ===========
key    definition                                           better
====== ==================================================== ===========
FRCorr max CCC over the appropriate set, summed over K,     higher
       mean over speakers (official FRC)
FRDist min weighted DTW over the appropriate set, summed    lower
       over K, mean over speakers (official FRD)
FRDiv  diversity among the K reactions to one speaker       higher
       (official S-MSE)
FRVar  variance over time within a reaction                 higher
FRDvs  diversity across speakers                            higher
PCC    max Pearson correlation over the appropriate set,    higher
       mean over (speaker, prediction)
TLCC   mean absolute best lag (frames) to the speaker       lower
FRRea  weight-free realism: Fréchet distance of reaction    lower
       window features (see :mod:`regnn.metrics.realism`)
====== ==================================================== ===========

This project's additions (:mod:`regnn.metrics.coverage`; not REACT's, published tables do
not have them), which show where the diversity and appropriateness figures come from:

========== ================================================ ==============
key        definition                                       better
========== ================================================ ==============
Jitter     mean abs frame-to-frame change, generated over   closest to 1
           real (1 = as smooth as real faces)
FRDivRatio FRDiv of the K reactions over the S-MSE among    closest to 1
           the real appropriate reactions (items with >= 2)
FRCov      share of each speaker's appropriate reactions    higher
           nearest (FRDist's DTW) to one of the K reactions
========== ================================================ ==============

The REACT protocol's own FRRea, the image FID of rendered faces with pytorch-fid's Inception
weights, is :mod:`regnn.fid` (its statistics: :mod:`regnn.metrics.fid`; key ``FRRea_FID``;
``regnn evaluate --fid-weights``); it needs the weight file, so it is not part of
:func:`compute_all`.

``workers`` sets the number of threads of the compiled kernels (default: all cores).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from regnn.metrics import coverage as _coverage
from regnn.metrics._inputs import as_neighbours, as_pred, as_sequences
from regnn.metrics.catalogue import METRIC, METRICS, Metric, canonical
from regnn.metrics.correlation import max_correlations
from regnn.metrics.diversity import diversity_scores
from regnn.metrics.dtw import min_weighted_dtw, set_threads, weighted_dtw_pair
from regnn.metrics.realism import attribute_frechet, frechet_distance
from regnn.metrics.synchrony import tlcc_offsets

#: the metrics of the REACT protocol (the official code's numbers)
REACT_KEYS: tuple[str, ...] = tuple(m.key for m in METRICS if m.react and m.key != "FRRea_FID")
#: this project's additions (:mod:`regnn.metrics.coverage`)
EXTRA_KEYS: tuple[str, ...] = tuple(m.key for m in METRICS if not m.react)
#: everything :func:`compute_all` returns, in this order
METRIC_KEYS: tuple[str, ...] = REACT_KEYS + EXTRA_KEYS
#: the image FID of ``regnn evaluate --fid-weights`` (:mod:`regnn.metrics.fid`)
FID_KEY = "FRRea_FID"
#: True: higher is better; False: lower is better; None: closest to 1 is best
HIGHER_IS_BETTER: dict[str, bool | None] = {m.key: m.higher_is_better for m in METRICS}

__all__ = [
    "METRIC", "METRICS", "Metric", "canonical",
    "EXTRA_KEYS", "FID_KEY", "HIGHER_IS_BETTER", "METRIC_KEYS", "REACT_KEYS", "compute_all",
    "fr_corr", "fr_cov", "fr_dist", "fr_div", "fr_div_ratio", "fr_dvs", "fr_rea", "fr_var",
    "frechet_distance", "jitter", "pcc", "tlcc", "weighted_dtw_pair",
]


def better_word(key: str) -> str:
    """``"higher"``, ``"lower"`` or ``"closest to 1"``: which values of ``key`` are better."""
    return METRIC[key].better_word


@contextmanager
def _threads(workers: int | None) -> Iterator[None]:
    previous = set_threads(workers)
    try:
        yield
    finally:
        set_threads(previous)


def _prepare(pred: Any, listener: Any, neighbours: Any, *, same_length: bool = True
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = as_pred(pred)
    lis = as_sequences(listener, "listener", p, same_length=same_length, same_count=False)
    return p, lis, as_neighbours(neighbours, p.shape[0], lis.shape[0])


def fr_corr(pred: Any, listener: Any, neighbours: Any, *, workers: int | None = None
            ) -> float:
    """FRCorr: for each prediction the best CCC over its speaker's appropriate set, summed
    over the K predictions, averaged over speakers."""
    p, lis, nb = _prepare(pred, listener, neighbours)
    with _threads(workers):
        ccc, _ = max_correlations(p, lis, nb)
    return float(ccc.sum(axis=1).mean())


def pcc(pred: Any, listener: Any, neighbours: Any, *, workers: int | None = None) -> float:
    """PCC: for each prediction the best Pearson correlation (mean over the 25 columns, 0
    for a constant column) over the appropriate set, averaged over all predictions."""
    p, lis, nb = _prepare(pred, listener, neighbours)
    with _threads(workers):
        _, best = max_correlations(p, lis, nb)
    return float(best.mean())


def fr_dist(pred: Any, listener: Any, neighbours: Any, *, workers: int | None = None,
            progress: bool = False) -> float:
    """FRDist: for each prediction the least weighted DTW distance to a reaction of its
    speaker's appropriate set, summed over the K predictions, averaged over speakers.
    ``listener`` may have another length than ``pred`` (DTW aligns them)."""
    p, lis, nb = _prepare(pred, listener, neighbours, same_length=False)
    with _threads(workers):
        best = min_weighted_dtw(p, lis, nb, progress=progress)
    return float(best.sum(axis=1).mean())


def fr_cov(pred: Any, listener: Any, neighbours: Any, *, workers: int | None = None) -> float:
    """FRCov (this project's): for each speaker with at least two appropriate reactions, the
    share of them that are the nearest (weighted DTW) to one of its K predictions; mean."""
    p, lis, nb = _prepare(pred, listener, neighbours, same_length=False)
    with _threads(workers):
        _, nearest = min_weighted_dtw(p, lis, nb, return_index=True)
    return _coverage.fr_cov_from_nearest(nearest, nb)


def jitter(pred: Any, listener: Any, neighbours: Any) -> float:
    """Jitter (this project's): mean absolute frame-to-frame change of the predictions over
    that of the real reactions appropriate for the scored speakers (1 = as smooth)."""
    p, lis, nb = _prepare(pred, listener, neighbours, same_length=False)
    return _coverage.jitter(p, lis, nb)


def fr_div_ratio(pred: Any, listener: Any, neighbours: Any) -> float:
    """FRDivRatio (this project's): FRDiv of the K predictions over the S-MSE among the real
    appropriate reactions, both averaged over the speakers with at least two of them."""
    p, lis, nb = _prepare(pred, listener, neighbours, same_length=False)
    return _coverage.fr_div_ratio(p, lis, nb)


def fr_div(pred: Any) -> float:
    """FRDiv (S-MSE): mean squared distance between two reactions to the same speaker."""
    return diversity_scores(as_pred(pred))["FRDiv"]


def fr_var(pred: Any) -> float:
    """FRVar: mean unbiased variance over time of each reaction's columns."""
    return diversity_scores(as_pred(pred))["FRVar"]


def fr_dvs(pred: Any) -> float:
    """FRDvs: mean squared distance between the reactions to two different speakers."""
    return diversity_scores(as_pred(pred))["FRDvs"]


def tlcc(pred: Any, speaker: Any, first_only: bool = False, *, workers: int | None = None
         ) -> float:
    """TLCC (Synchrony): mean absolute lag, in frames, of the best correlation between a
    prediction and its speaker within +-49 frames. ``first_only=True`` reproduces the
    official multi-process helper, which scores only prediction 0 of each speaker."""
    p = as_pred(pred)
    sp = as_sequences(speaker, "speaker", p)
    with _threads(workers):
        offsets = tlcc_offsets(p, sp, first_only=first_only)
    # official: torch.mean(torch.Tensor(offsets)), a float32 mean of small integers
    return float(np.float32(offsets.sum()) / np.float32(len(offsets)))


def fr_rea(pred: Any, listener: Any) -> float:
    """FRRea (weight-free): Fréchet distance between the window features of the real and the
    generated reactions (:func:`regnn.metrics.realism.attribute_frechet`)."""
    p = as_pred(pred)
    lis = as_sequences(listener, "listener", p, same_length=False, same_count=False)
    return attribute_frechet(p, lis)


def compute_all(
    pred: Any, speaker: Any, listener: Any, neighbours: Any, *, tlcc_first_only: bool = False,
    workers: int | None = None, progress: bool = False,
    timings: dict[str, float] | None = None,
) -> dict[str, float]:
    """The eight REACT scores of ``pred`` and this project's three additions, as a dict (keys
    :data:`METRIC_KEYS`).

    ``tlcc_first_only`` selects the official multi-process TLCC variant (see :func:`tlcc`).
    When ``timings`` is a dict it receives the seconds spent on each metric.
    """
    p = as_pred(pred)
    sp = as_sequences(speaker, "speaker", p)
    lis = as_sequences(listener, "listener", p, same_count=False)
    nb = as_neighbours(neighbours, p.shape[0], lis.shape[0])
    spent: dict[str, float] = {}
    scores: dict[str, float] = {}
    with _threads(workers):
        t0 = time.perf_counter()
        ccc, best_pcc = max_correlations(p, lis, nb)
        scores["FRCorr"] = float(ccc.sum(axis=1).mean())
        scores["PCC"] = float(best_pcc.mean())
        spent["FRCorr+PCC"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        dist, nearest = min_weighted_dtw(p, lis, nb, progress=progress, return_index=True)
        scores["FRDist"] = float(dist.sum(axis=1).mean())
        spent["FRDist"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores.update(diversity_scores(p))
        spent["FRDiv+FRVar+FRDvs"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        offsets = tlcc_offsets(p, sp, first_only=tlcc_first_only)
        scores["TLCC"] = float(np.float32(offsets.sum()) / np.float32(len(offsets)))
        spent["TLCC"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores["FRRea"] = attribute_frechet(p, lis)
        spent["FRRea"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores.update(_coverage.coverage_scores(p, lis, nb, nearest))
        spent["Jitter+FRDivRatio+FRCov"] = time.perf_counter() - t0
    if timings is not None:
        timings.update(spent)
    return {key: scores[key] for key in METRIC_KEYS}

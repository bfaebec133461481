"""Appropriateness matrices for any dyadic dataset (``regnn data neighbours``).

The REACT principle (Song et al. 2023, arXiv 2302.06514): speakers whose behaviours are
similar share their listeners' real reactions as appropriate. The REACT release does not
publish its exact similarity measure or threshold, so this module implements a documented
procedure in two steps (details and measured figures in ``docs/neighbours.md``):

1. **Distance between speaker behaviours.** The speakers' attribute sequences (N, T, 25),
   optionally with 8 pooled log-mel audio bands appended as extra channels, are z-scored per
   channel over the whole split (every attribute then weighs the same whatever its range).
   Then one of:

   * ``auto`` (default): ``motion`` if it shows substantial cluster structure, else
     ``dtw`` (:func:`choose`; the criterion, a silhouette above 0.25, is reported).
   * ``motion``: ``1 - r`` with r the Pearson correlation between two speakers'
     frame-to-frame changes (first differences of the z-scored channels, all channels
     concatenated). Differencing removes each person's constant baseline (resting face,
     detector calibration, a habitually raised AU) and keeps *what the face does when*.
   * ``level``: ``1 - r`` on the z-scored levels themselves. Pearson correlation removes
     each item's per-channel mean too, but slow trends dominate where ``motion`` weighs
     every change by its speed; a mimicking listener who lags a speaker by a fraction of a
     second still correlates strongly in level, much less in motion.
   * ``dtw``: dynamic time warping without a band between 2-second window means of the
     channels smoothed over 1 s, RMS per step: the course of behaviour states at any pace
     and timing (speakers who play the same episodes with boundaries at different times).
   * ``stats``: time-invariant summary statistics per channel (mean, std, 10th and 90th
     percentiles, mean absolute change), z-scored across items; Euclidean distance divided by
     the square root of the number of features. The only method where baselines count and
     neither timing nor order does.

2. **From distances to a matrix.** Agglomerative clustering (``complete`` linkage by
   default) cut at a distance threshold; ``A[k, j] = 1`` when items k and j fall in the same
   cluster. Complete linkage guarantees that every pair declared appropriate is itself within
   the threshold (no chaining), while the clustering makes the relation transitive, as the
   REACT release's clustering does. ``linkage="none"`` gives the plain pairwise rule
   ``A[k, j] = d(k, j) <= threshold`` instead. The threshold is ``"auto"`` (the dendrogram cut
   that maximises the mean silhouette, a standard, label-free criterion of cluster quality;
   groups that show structure of their own are then split again by the same rule
   (:func:`refine`); when even the best cut scores <= 0.25, "no substantial structure" in
   Kaufman and Rousseeuw's reading, every speaker keeps only its own listener and a warning
   says which threshold would have grouped), an absolute distance, or ``"P%"``, the P-th
   percentile of the off-diagonal distances. Under ``dtw`` the two persons of one clip are
   never grouped (:func:`_apart`).

The diagonal is always 1. Items are in the mirrored order of ``react-protocol.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regnn import schema
from regnn.data.distances import (  # noqa: F401 - re-exported: the builder's public names
    AUDIO_BANDS,
    DEFAULT_DISTANCE,
    DISTANCES,
    DTW_BAND,
    DTW_SMOOTH,
    DTW_STEP,
    Progress,
    _correlation_distance,
    _unit_rows,
    distance_matrix,
    dtw_distance,
    level_distance,
    motion_distance,
    pool_audio,
    standardise,
    stats_distance,
    summary_features,
    window_means,
)
from regnn.data.grouping import (  # noqa: F401 - re-exported: the builder's public names
    DEFAULT_LINKAGE,
    LINKAGES,
    NESTED_MIN,
    NO_STRUCTURE_SILHOUETTE,
    Grouping,
    _apart,
    _cut,
    _threshold_for,
    auto_threshold,
    group,
    mirrored_partners,
    parse_threshold,
    refine,
    silhouette,
)
from regnn.errors import ConfigError

#: ``--method`` choices: a distance, or ``auto`` (choose among :data:`AUTO_ORDER`)
METHODS: tuple[str, ...] = ("auto", *DISTANCES)
#: what ``auto`` tries, most time-specific first: the first showing substantial structure wins
AUTO_ORDER: tuple[str, ...] = ("motion", "dtw")
DEFAULT_METHOD = "auto"
#: distances under which the two persons of a clip are never grouped (mirrored items): a
#: timing-tolerant distance absorbs the lag of a listener's echo of its speaker
PARTNERS_APART: tuple[str, ...] = ("dtw",)



@dataclass
class Choice:
    """The distance ``--method auto`` chose, its grouping, and what every candidate showed."""

    method: str
    distances: np.ndarray
    grouping: Grouping
    candidates: list[dict]  # per distance tried: method, silhouette, threshold, groups
    rule: str  # "auto: ..." (why this method) or "given"


def _candidate(method: str, g: Grouping) -> dict:
    return {"method": method, "silhouette": g.top_silhouette, "threshold": g.best_threshold,
            "groups": g.best_groups, "structure": g.threshold_rule == "auto"}


def choose(speakers: np.ndarray, audio: np.ndarray | None = None,
           linkage: str = DEFAULT_LINKAGE, progress: Progress | None = None,
           mirrored: bool = False) -> Choice:
    """``--method auto``: the most time-specific distance that shows substantial structure.

    Tries :data:`AUTO_ORDER` in turn (``motion``: speakers doing the same thing at the same
    moment; ``dtw``: the same course of behaviour at any pace and timing) and keeps the first
    whose silhouette-best cut exceeds :data:`NO_STRUCTURE_SILHOUETTE`, a label-free criterion.
    Silhouettes of different distances are not compared with each other: a time-tolerant
    distance also merges speakers that a time-locked one rightly separates (e.g. a listener
    mimicking a speaker 0.3 s later). When none shows structure every speaker keeps only its
    own listener, and the warning names the strongest alternative among all distances (its
    method, threshold and number of groups), so that the user can group anyway. With
    ``mirrored`` (items in the mirrored order), the two persons of a clip are never grouped
    under the distances of :data:`PARTNERS_APART` (:func:`mirrored_partners`).
    """
    pairs = mirrored_partners(len(speakers)) if mirrored else None

    def dist(method: str, tick: Progress | None = None) -> np.ndarray:
        return distance_matrix(speakers, method, audio, tick)

    candidates: list[dict] = []
    first: tuple[str, np.ndarray, Grouping] | None = None
    for method in AUTO_ORDER:
        d = dist(method, progress if method == "dtw" else None)
        g = group(d, "auto", linkage,
                  partners=pairs if method in PARTNERS_APART else None)
        candidates.append(_candidate(method, g))
        if g.threshold_rule == "auto":
            tried = ", ".join(f"{c['method']} {c['silhouette']:.3f}" for c in candidates)
            return Choice(method, d, g, candidates,
                          f"auto: first of {'/'.join(AUTO_ORDER)} with silhouette > "
                          f"{NO_STRUCTURE_SILHOUETTE} ({tried})")
        if first is None:
            first = (method, d, g)
    assert first is not None
    method, d, g = first
    if len(d) >= 3:
        for other in DISTANCES:
            if other not in AUTO_ORDER:
                partners = pairs if other in PARTNERS_APART else None
                candidates.append(_candidate(other, group(dist(other), "auto", linkage,
                                                          partners=partners)))
        scored = [c for c in candidates if c["silhouette"] == c["silhouette"]]
        tried = ", ".join(f"{c['method']} {c['silhouette']:.3f}" for c in candidates)
        note = (f"no substantial cluster structure under any distance (best silhouettes: "
                f"{tried}; <= {NO_STRUCTURE_SILHOUETTE}): every speaker keeps only its own "
                "listener")
        if scored:
            best = max(scored, key=lambda c: c["silhouette"])
            note += (f". The strongest alternative: --method {best['method']} --threshold "
                     f"{best['threshold']:.4g} would make {best['groups']} groups (mean "
                     f"silhouette {best['silhouette']:.3f})")
        g.warnings[:] = [note]
    return Choice(method, d, g, candidates,
                  f"auto: no distance of {'/'.join(AUTO_ORDER)} shows structure")


# --------------------------------------------------------------------------- evaluation
def summarise(matrix: np.ndarray) -> dict:
    """Items, appropriate reactions per speaker (mean/min/max, diagonal included), isolated
    speakers (only their own listener), density of off-diagonal ones."""
    m = np.asarray(matrix, dtype=bool)
    n = m.shape[0]
    per = m.sum(axis=1)
    off = int(m.sum() - np.trace(m))
    return {"items": n,
            "appropriate_mean": float(per.mean()) if n else 0.0,
            "appropriate_min": int(per.min()) if n else 0,
            "appropriate_max": int(per.max()) if n else 0,
            "isolated": int((per <= 1).sum()),
            "off_diagonal_density": off / (n * (n - 1)) if n > 1 else 0.0}


def precision_recall(built: np.ndarray, truth: np.ndarray) -> dict:
    """Precision and recall of the off-diagonal ones of ``built`` against ``truth``."""
    b, t = np.asarray(built, bool), np.asarray(truth, bool)
    if b.shape != t.shape:
        raise ConfigError(f"matrices differ in shape: {b.shape} vs {t.shape}")
    off = ~np.eye(b.shape[0], dtype=bool)
    tp = int((b & t & off).sum())
    pred, true = int((b & off).sum()), int((t & off).sum())
    return {"precision": tp / pred if pred else float("nan"),
            "recall": tp / true if true else float("nan"),
            "true_positives": tp, "predicted": pred, "true": true}


# --------------------------------------------------------------------------- datasets
@dataclass
class NeighbourResult:
    split: str
    method: str
    grouping: Grouping
    summary: dict
    distances: np.ndarray

    @property
    def matrix(self) -> np.ndarray:
        return self.grouping.matrix


def _read_attributes(path: Path) -> np.ndarray:
    from regnn.data import layout

    return layout.load_emotion_csv(path)


def load_behaviours(root: str | Path, split: str, audio: bool = False,
                    progress: bool = False, workers: int | None = None,
                    parallel_min: int = 200) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, 750, 25) speaker attributes of a split's mirrored items, and (N, 750, 64) log-mel
    of their speakers' audio when ``audio``.

    Attribute CSVs are parsed (and validated, as the REACT reader does) in ``workers``
    processes (default: one per CPU, at most 4) when there are ``parallel_min`` items or more;
    parsing dominates the run time at 3,000 items.
    """
    import os

    from regnn.data.react import ReactSplit

    ds = ReactSplit(root, split, audio=audio)
    n = len(ds)
    paths = [ds.emotion_path(ds.items[i].speaker_path) for i in range(n)]
    speakers = np.empty((n, ds.frames, schema.NUM_ATTRIBUTES), dtype=np.float32)
    workers = min(4, os.cpu_count() or 1) if workers is None else max(1, workers)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc=f"neighbours {split}: read", unit="item", leave=False)
    if workers > 1 and n >= parallel_min:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            for i, arr in enumerate(pool.map(_read_attributes, paths, chunksize=32)):
                speakers[i] = arr
                if bar is not None:
                    bar.update()
    else:
        for i in range(n):
            speakers[i] = ds.speaker(i)
            if bar is not None:
                bar.update()
    mels = None
    if audio:
        mels = np.empty((n, ds.frames, ds.audio_dim), dtype=np.float32)
        for i in range(n):
            mels[i] = ds.audio(i)
    if bar is not None:
        bar.close()
    return speakers, mels


def check_method(method: str, threshold: str | float | None) -> None:
    """Fail early on an unknown method, or on a fixed threshold without a named distance."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    kind, _ = parse_threshold(threshold)
    if method == "auto" and kind != "auto":
        raise ConfigError(f"threshold {threshold!r} needs a named distance: a threshold is a "
                          f"distance of one method; pass --method "
                          f"{'|'.join(DISTANCES)} with it (or --threshold auto)")


def build_from_arrays(speakers: np.ndarray, audio: np.ndarray | None = None,
                      method: str = DEFAULT_METHOD, threshold: str | float | None = "auto",
                      linkage: str = DEFAULT_LINKAGE, progress: Progress | None = None,
                      mirrored: bool = True) -> Choice:
    """:func:`build_neighbours` on arrays: ``speakers`` (N, T, C) of N items, in the mirrored
    order when ``mirrored`` (partners are then never grouped under the distances of
    :data:`PARTNERS_APART`: :func:`mirrored_partners`)."""
    check_method(method, threshold)
    if method == "auto":
        return choose(speakers, audio, linkage, progress, mirrored=mirrored)
    d = distance_matrix(speakers, method, audio, progress)
    apart = mirrored and method in PARTNERS_APART
    g = group(d, threshold, linkage, partners=mirrored_partners(len(speakers)) if apart else None)
    return Choice(method, d, g, [_candidate(method, g)], "given")


def build_neighbours(root: str | Path, split: str, method: str = DEFAULT_METHOD,
                     threshold: str | float | None = "auto", linkage: str = DEFAULT_LINKAGE,
                     audio: bool = False, progress: bool = False) -> NeighbourResult:
    """Build (do not write) the appropriateness matrix of ``split`` from its speakers.

    ``method="auto"`` (the default) chooses the distance with :func:`choose`; the summary
    says which and why (``method_rule``, ``candidates``).
    """
    check_method(method, threshold)  # fail before reading any file
    speakers, mels = load_behaviours(root, split, audio, progress)
    bar = None
    tick: Progress | None = None
    if progress and method in ("dtw", "auto"):
        from tqdm import tqdm

        bar = tqdm(total=len(speakers), desc=f"neighbours {split}: dtw", unit="row",
                   leave=False)
        tick = bar.update
    try:
        choice = build_from_arrays(speakers, mels, method, threshold, linkage, tick)
    finally:
        if bar is not None:
            bar.close()
    g = choice.grouping
    summary = summarise(g.matrix)
    summary.update(split=split, method=choice.method, method_rule=choice.rule,
                   candidates=choice.candidates, audio=audio, linkage=linkage,
                   threshold=g.threshold, threshold_rule=g.threshold_rule,
                   silhouette=g.silhouette, nested_splits=g.nested_splits,
                   groups=int(len(np.unique(g.labels))) if g.labels is not None else None)
    return NeighbourResult(split, choice.method, g, summary, choice.distances)

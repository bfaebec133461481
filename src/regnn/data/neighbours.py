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

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from regnn import schema
from regnn.errors import ConfigError

#: distances between speaker behaviours (``distance_matrix``)
DISTANCES: tuple[str, ...] = ("motion", "level", "dtw", "stats")
#: ``--method`` choices: a distance, or ``auto`` (choose among :data:`AUTO_ORDER`)
METHODS: tuple[str, ...] = ("auto", *DISTANCES)
#: what ``auto`` tries, most time-specific first: the first showing substantial structure wins
AUTO_ORDER: tuple[str, ...] = ("motion", "dtw")
LINKAGES: tuple[str, ...] = ("complete", "average", "single", "none")
DEFAULT_METHOD = "auto"
DEFAULT_DISTANCE = "motion"  # the distance of other tools (the nn reference) when none is named
DEFAULT_LINKAGE = "complete"
AUDIO_BANDS = 8  # log-mel bands are pooled into this many channels when audio is used
DTW_SMOOTH = 25.0  # Gaussian smoothing (frames) of the channels before the DTW windows
DTW_STEP = 50  # frames per DTW step (2 s at 25 fps)
DTW_BAND: int | None = None  # Sakoe-Chiba radius in steps; None: no band (any timing shift)
NESTED_MIN = 4  # ``auto`` looks for structure inside groups of at least this many items
#: distances under which the two persons of a clip are never grouped (mirrored items): a
#: timing-tolerant distance absorbs the lag of a listener's echo of its speaker
PARTNERS_APART: tuple[str, ...] = ("dtw",)
#: Kaufman & Rousseeuw (1990): a mean silhouette <= 0.25 means "no substantial structure"
NO_STRUCTURE_SILHOUETTE = 0.25

Progress = Callable[[int], None]


# --------------------------------------------------------------------------- features
def standardise(x: np.ndarray) -> np.ndarray:
    """Z-score each channel of ``x`` (N, T, C) over all items and frames, as float32.

    A constant channel (std 0) becomes all zeros.
    """
    x = np.asarray(x, dtype=np.float32)
    flat = x.reshape(-1, x.shape[-1])
    mean = flat.mean(axis=0, dtype=np.float64)
    std = flat.std(axis=0, dtype=np.float64)
    scale = np.where(std > 1e-8, 1.0 / np.maximum(std, 1e-8), 0.0)
    return ((x - mean.astype(np.float32)) * scale.astype(np.float32)).astype(np.float32)


def pool_audio(logmel: np.ndarray, bands: int = AUDIO_BANDS) -> np.ndarray:
    """(N, T, F) log-mel -> (N, T, bands) by averaging groups of adjacent mel bands."""
    n, t, f = logmel.shape
    if f % bands:
        raise ValueError(f"{f} mel bands cannot be pooled into {bands} equal groups")
    return logmel.reshape(n, t, bands, f // bands).mean(axis=3, dtype=np.float32)


def _unit_rows(f: np.ndarray) -> np.ndarray:
    """Centre and L2-normalise each row (in place); zero rows stay zero."""
    f -= f.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(f, axis=1, keepdims=True)
    np.divide(f, norm, out=f, where=norm > 1e-12)
    f[(norm <= 1e-12)[:, 0]] = 0.0
    return f


def _correlation_distance(f: np.ndarray) -> np.ndarray:
    """``1 - r`` between the rows of ``f`` (N, D), r the Pearson correlation.

    A constant row is uncorrelated with everything (distance 1), except itself (0). ``f`` is
    overwritten (callers pass a temporary: at 3,000 items a copy costs 225 MB).
    """
    f = _unit_rows(np.asarray(f, dtype=np.float32))
    r = f @ f.T  # one BLAS call: N^2 D flops
    d = 1.0 - r.astype(np.float64)
    np.clip(d, 0.0, 2.0, out=d)
    np.fill_diagonal(d, 0.0)
    return d


def motion_distance(z: np.ndarray) -> np.ndarray:
    """``1 - corr`` of the first differences of sequences ``z`` (N, T, C).

    The differences are themselves z-scored per channel over the split, so each channel's
    motion weighs the same: a jittery channel (e.g. frame-level audio energy) does not drown
    the smooth facial ones.
    """
    n = z.shape[0]
    dz = standardise(np.diff(z, axis=1))
    dz -= dz.mean(axis=1, keepdims=True)  # per-item, per-channel centring
    return _correlation_distance(dz.reshape(n, -1))


def level_distance(z: np.ndarray) -> np.ndarray:
    """``1 - corr`` of the standardised sequences ``z`` (N, T, C), channels centred per item."""
    n = z.shape[0]
    zc = z - z.mean(axis=1, keepdims=True)
    return _correlation_distance(zc.reshape(n, -1))


def summary_features(z: np.ndarray) -> np.ndarray:
    """(N, 5C) time-invariant statistics: mean, std, p10, p90, mean |change| per channel."""
    q10, q90 = np.percentile(z, [10, 90], axis=1)
    feats = [z.mean(axis=1), z.std(axis=1), q10, q90, np.abs(np.diff(z, axis=1)).mean(axis=1)]
    return np.concatenate(feats, axis=1).astype(np.float64)


def stats_distance(z: np.ndarray) -> np.ndarray:
    """Euclidean distance between z-scored summary statistics, divided by sqrt(#features)."""
    f = summary_features(z)
    sd = f.std(axis=0)
    f = (f - f.mean(axis=0)) / np.where(sd > 1e-12, sd, 1.0)
    sq = (f * f).sum(axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (f @ f.T)
    d = np.sqrt(np.clip(d2, 0.0, None) / f.shape[1])
    np.fill_diagonal(d, 0.0)
    return d


def window_means(z: np.ndarray, step: int = DTW_STEP) -> np.ndarray:
    """(N, T // step, C) means of consecutive windows of ``step`` frames (the tail is dropped)."""
    n, t, c = z.shape
    w = t // step
    if w < 1:
        raise ConfigError(f"sequences of {t} frames are shorter than one DTW step ({step})")
    return z[:, : w * step].reshape(n, w, step, c).mean(axis=2, dtype=np.float32)


def dtw_distance(z: np.ndarray, step: int = DTW_STEP, band: int | None = DTW_BAND,
                 smooth: float = DTW_SMOOTH, progress: Progress | None = None) -> np.ndarray:
    """DTW between window means of ``z`` (N, T, C): sqrt(least total squared cost / steps).

    The channels are first smoothed with a Gaussian of ``smooth`` frames (0: none), so that
    what is compared is the course of behaviour states, not frame-level detail; the warping
    path is unconstrained (``band`` None) or restricted to ``|i - j| <= band`` steps
    (Sakoe-Chiba). Compiled with numba and parallel over rows; ``progress(k)`` is called after
    each block of rows.
    """
    from regnn.data._dtw_kernel import dtw_block

    if smooth > 0:
        from scipy.ndimage import gaussian_filter1d

        z = gaussian_filter1d(z, smooth, axis=1, mode="nearest")
    w = np.ascontiguousarray(window_means(z, step))
    n, steps, _ = w.shape
    band = steps if band is None else band
    out = np.zeros((n, n), dtype=np.float64)
    block = max(1, min(n, 64))
    for start in range(0, n, block):
        stop = min(n, start + block)
        dtw_block(w, start, stop, band, out)
        if progress is not None:
            progress(stop - start)
    out = np.maximum(out, out.T)  # the kernel fills j > i only
    return np.sqrt(out / steps)


def distance_matrix(speakers: np.ndarray, method: str = DEFAULT_DISTANCE,
                    audio: np.ndarray | None = None,
                    progress: Progress | None = None) -> np.ndarray:
    """(N, N) float64 distances between the speaker behaviours of N items.

    ``speakers`` is (N, T, 25) (any channel count works); ``audio`` an optional (N, T, F)
    log-mel array whose bands are pooled into :data:`AUDIO_BANDS` extra channels.
    """
    if method not in DISTANCES:
        raise ConfigError(f"unknown method {method!r}; expected one of {', '.join(DISTANCES)}")
    x = np.asarray(speakers, dtype=np.float32)
    if x.ndim != 3 or x.shape[0] < 1 or x.shape[1] < 2:
        raise ConfigError(f"speaker behaviours must be (N, T >= 2, C), got shape {x.shape}")
    if audio is not None:
        a = np.asarray(audio, dtype=np.float32)
        if a.shape[:2] != x.shape[:2]:
            raise ConfigError(f"audio features {a.shape} do not match the attributes {x.shape}")
        x = np.concatenate([x, pool_audio(a)], axis=2)
    z = standardise(x)
    del x
    if method == "motion":
        return motion_distance(z)
    if method == "level":
        return level_distance(z)
    if method == "stats":
        return stats_distance(z)
    return dtw_distance(z, progress=progress)


# --------------------------------------------------------------------------- grouping
def mirrored_partners(n: int) -> np.ndarray:
    """Index of every item's partner in the mirrored order: items k and k + N/2 are the two
    persons of one dyad clip, each once as the speaker."""
    if n % 2:
        raise ConfigError(f"mirrored items come in pairs; got {n} items")
    return (np.arange(n) + n // 2) % n if n else np.zeros(0, dtype=np.int64)


def _apart(d: np.ndarray, partners: np.ndarray | None) -> np.ndarray:
    """The distances the linkage sees: partners beyond every cut (cannot-link).

    A listener's behaviour answers its speaker's (mimicry, lagged echoes), so a
    timing-tolerant distance finds the two persons of one clip alike; that says nothing about
    *different* speakers behaving alike, and grouping them would declare a person's own
    behaviour an appropriate reaction to themselves. Silhouettes keep using the real
    distances, so such pairs count against a cut that separates them, as they should.
    """
    if partners is None or not len(d):
        return d
    out = np.array(d, dtype=np.float64)
    out[np.arange(len(d)), partners] = 2.0 * float(d.max()) + 1.0
    return out


def silhouette(d: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of a partition under the precomputed distances ``d`` (O(N^2)).

    Items alone in their cluster score 0 (the usual convention); NaN if there are fewer than
    2 or more than N - 1 clusters.
    """
    from scipy import sparse

    n = len(labels)
    _, lab = np.unique(labels, return_inverse=True)
    k = int(lab.max()) + 1 if n else 0
    if not 2 <= k <= n - 1:
        return float("nan")
    onehot = sparse.csr_matrix((np.ones(n), (lab, np.arange(n))), shape=(k, n))
    sums = np.asarray((onehot @ d).T)  # (n, k): total distance of item i to cluster c
    counts = np.bincount(lab, minlength=k).astype(np.float64)
    rows = np.arange(n)
    own = counts[lab]
    a = np.where(own > 1, sums[rows, lab] / np.maximum(own - 1, 1), 0.0)
    means = sums / counts
    means[rows, lab] = np.inf
    b = means.min(axis=1)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def _cut(tree: np.ndarray, threshold: float) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster

    return fcluster(tree, threshold, criterion="distance")


def _threshold_for(heights: np.ndarray, k: int) -> float:
    """A cut height giving k clusters: midway between merge N-k-1 and merge N-k."""
    n = len(heights) + 1
    lo, hi = heights[n - k - 1], heights[n - k]
    return float((lo + hi) / 2.0)


def auto_threshold(d: np.ndarray, tree: np.ndarray, max_evals: int = 80
                   ) -> tuple[float, float]:
    """The dendrogram cut that maximises the mean silhouette: (threshold, silhouette).

    Candidate cluster counts k: a log-spaced grid over 2..N-1, then every k near the best.
    Returns (nan, nan) when N < 3 (no cut with 2 <= k <= N - 1 exists).
    """
    n = d.shape[0]
    if n < 3:
        return float("nan"), float("nan")
    heights = tree[:, 2]
    scores: dict[int, tuple[float, float]] = {}

    def score(k: int) -> None:
        if k in scores or not 2 <= k <= n - 1:
            return
        t = _threshold_for(heights, k)
        scores[k] = (silhouette(d, _cut(tree, t)), t)

    grid = np.unique(np.geomspace(2, n - 1, num=min(n - 2, max_evals // 2)).round().astype(int))
    for k in grid:
        score(int(k))
    best = max(scores, key=lambda k: (np.nan_to_num(scores[k][0], nan=-2.0), -k))
    span = max(2, int(math.ceil(best * 0.15)))
    for k in range(best - span, best + span + 1):
        if len(scores) >= max_evals + 2 * span + 1:
            break
        score(k)
    best = max(scores, key=lambda k: (np.nan_to_num(scores[k][0], nan=-2.0), -k))
    s, t = scores[best]
    return t, s


def parse_threshold(spec: str | float | None) -> tuple[str, float | None]:
    """Parse a threshold: ``"auto"`` -> ("auto", None); ``"0.4"`` -> ("distance", 0.4);
    ``"5%"`` -> ("percentile", 5.0)."""
    if spec is None:
        return "auto", None
    if isinstance(spec, int | float):
        value, kind = float(spec), "distance"
    else:
        text = str(spec).strip().lower()
        if text == "auto":
            return "auto", None
        kind = "percentile" if text.endswith("%") else "distance"
        try:
            value = float(text.rstrip("%"))
        except ValueError:
            raise ConfigError(f"threshold {spec!r} is not 'auto', a distance (e.g. 0.45) or "
                              "a percentile of the distances (e.g. 5%)") from None
    if not math.isfinite(value) or value < 0 or (kind == "percentile" and value > 100):
        raise ConfigError(f"threshold {spec!r} out of range (distance >= 0, percentile in "
                          "0..100%)")
    return kind, value


@dataclass
class Grouping:
    """The appropriateness matrix and how it was obtained."""

    matrix: np.ndarray  # (N, N) bool, diagonal True
    threshold: float
    threshold_rule: str  # "auto" | "distance" | "percentile" | "singletons"
    linkage: str
    labels: np.ndarray | None = None  # cluster id per item (None with linkage "none")
    silhouette: float = float("nan")  # of the final partition
    warnings: list[str] = field(default_factory=list)
    top_silhouette: float = float("nan")  # "auto": the best cut of the whole dendrogram
    nested_splits: int = 0  # "auto": groups split again because they showed structure inside
    best_threshold: float = float("nan")  # "auto": the silhouette-best cut, taken or not
    best_groups: int = 0  # "auto": groups at that cut


def refine(d: np.ndarray, labels: np.ndarray, linkage: str = DEFAULT_LINKAGE,
           min_size: int = NESTED_MIN, partners: np.ndarray | None = None
           ) -> tuple[np.ndarray, int]:
    """Split again every group that shows substantial structure of its own.

    One silhouette-best cut of a dendrogram finds the *coarsest* clear structure: when some
    groups are far apart (e.g. listeners of different styles) and the groups inside them
    closer together (the contexts they react to), the best cut stops at the outer level.
    Each group of at least ``min_size`` items is therefore re-clustered on its own distances
    and split when its best cut's mean silhouette exceeds :data:`NO_STRUCTURE_SILHOUETTE`
    (the same label-free rule as for the whole split), recursively. Returns the new labels
    (0..k-1) and the number of splits made. ``partners``: as in :func:`group`.
    """
    from collections import deque

    from scipy.cluster.hierarchy import linkage as scipy_linkage
    from scipy.spatial.distance import squareform

    dl = _apart(d, partners)
    out = np.asarray(labels).copy()
    next_id = int(out.max()) + 1 if out.size else 0
    queue = deque(np.flatnonzero(out == c) for c in np.unique(out))
    splits = 0
    while queue:
        idx = queue.popleft()
        if len(idx) < max(3, min_size):
            continue
        sub = d[np.ix_(idx, idx)]
        tree = scipy_linkage(squareform(dl[np.ix_(idx, idx)], checks=False), method=linkage)
        t, sil = auto_threshold(sub, tree)
        if not sil > NO_STRUCTURE_SILHOUETTE:
            continue
        lab = _cut(tree, t)
        splits += 1
        for c in np.unique(lab):
            members = idx[lab == c]
            if c != lab.min():
                out[members] = next_id
                next_id += 1
            queue.append(members)
    return np.unique(out, return_inverse=True)[1], splits


def group(d: np.ndarray, threshold: str | float | None = "auto",
          linkage: str = DEFAULT_LINKAGE, nested: bool = True,
          partners: np.ndarray | None = None) -> Grouping:
    """Turn distances (N, N) into a boolean appropriateness matrix (see module docstring).

    With ``threshold="auto"`` and ``nested``, groups showing structure of their own are split
    again (:func:`refine`). ``partners[k]`` (e.g. :func:`mirrored_partners`) is never put in
    the same group as k (see :func:`_apart`).
    """
    from scipy.cluster.hierarchy import linkage as scipy_linkage
    from scipy.spatial.distance import squareform

    if linkage not in LINKAGES:
        raise ConfigError(f"unknown linkage {linkage!r}; expected one of {', '.join(LINKAGES)}")
    d = np.asarray(d, dtype=np.float64)
    n = d.shape[0]
    if d.shape != (n, n) or not np.isfinite(d).all():
        raise ConfigError(f"distances must be a finite square matrix, got shape {d.shape}")
    kind, value = parse_threshold(threshold)
    warnings: list[str] = []
    best_t, best_k = float("nan"), 0
    tri = squareform(d, checks=False) if n > 1 else np.zeros(0)
    dl = _apart(d, partners)
    tree = scipy_linkage(squareform(dl, checks=False),
                         method="complete" if linkage == "none" else linkage) \
        if n > 1 else None
    sil = float("nan")
    if kind == "auto":
        if tree is None or n < 3:
            t = -1.0
            kind = "singletons"
            warnings.append(f"only {n} items: too few to choose a threshold automatically; "
                            "every speaker keeps only its own listener")
        else:
            t, sil = auto_threshold(d, tree)
            best_t, best_k = t, int(len(np.unique(_cut(tree, t))))
            if not sil > NO_STRUCTURE_SILHOUETTE:
                warnings.append(f"no substantial cluster structure (best silhouette {sil:.3f} "
                                f"<= {NO_STRUCTURE_SILHOUETTE}): every speaker keeps only its "
                                f"own listener; --threshold {best_t:.4g} would group anyway "
                                f"({best_k} groups, that best cut)")
                t, kind = -1.0, "singletons"
    elif kind == "percentile":
        t = float(np.percentile(tri, value)) if tri.size else 0.0
    else:
        assert value is not None
        t = value
    labels = None
    top, splits = sil, 0
    if linkage == "none":
        m = dl <= t
    elif tree is None or t < 0:
        labels = np.arange(n)
        m = np.eye(n, dtype=bool)
    else:
        labels = _cut(tree, t) - 1
        if kind == "auto" and nested:
            labels, splits = refine(d, labels, linkage, partners=partners)
            if splits:
                sil = silhouette(d, labels)
        m = labels[:, None] == labels[None, :]
    np.fill_diagonal(m, True)
    if kind in ("distance", "percentile") and labels is not None and n >= 3:
        sil = silhouette(d, labels)
    return Grouping(m, float(t), kind, linkage, labels, sil, warnings, top, splits, best_t,
                    best_k)


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

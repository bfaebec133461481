"""Grouping speakers from their distances for ``regnn data neighbours`` (step 2 of the
procedure documented in :mod:`regnn.data.neighbours`): agglomerative clustering cut at a
threshold (``auto``: the best mean silhouette), nested groups split again, the two persons
of a clip kept apart where the distance asks for it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from regnn.errors import ConfigError

DEFAULT_LINKAGE = "complete"
LINKAGES: tuple[str, ...] = ("complete", "average", "single", "none")
NESTED_MIN = 4  # ``auto`` looks for structure inside groups of at least this many items
#: Kaufman & Rousseeuw (1990): a mean silhouette <= 0.25 means "no substantial structure"
NO_STRUCTURE_SILHOUETTE = 0.25


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



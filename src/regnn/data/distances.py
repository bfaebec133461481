"""Distances between speaker behaviours for ``regnn data neighbours`` (step 1 of the
procedure documented in :mod:`regnn.data.neighbours` and ``docs/neighbours.md``): z-scored
channels, then ``motion``, ``level``, ``dtw`` or ``stats``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from regnn.errors import ConfigError

AUDIO_BANDS = 8  # log-mel bands are pooled into this many channels when audio is used
DTW_SMOOTH = 25.0  # Gaussian smoothing (frames) of the channels before the DTW windows
DTW_STEP = 50  # frames per DTW step (2 s at 25 fps)
DTW_BAND: int | None = None  # Sakoe-Chiba radius in steps; None: no band (any timing shift)
DEFAULT_DISTANCE = "motion"  # the distance of other tools (the nn reference) when none is named
#: distances between speaker behaviours (``distance_matrix``)
DISTANCES: tuple[str, ...] = ("motion", "level", "dtw", "stats")

Progress = Callable[[int], None]


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



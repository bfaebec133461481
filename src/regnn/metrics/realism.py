"""FRRea without network weights: a Fréchet distance between real and generated reaction
windows, computed on the attribute sequences themselves.

The REACT protocol measures realism as the FID between rendered real and generated listener
faces (Inception features). That needs rendered frames and Inception weights; this score
needs neither and is defined as follows.

* **Windows.** Every sequence (T, 25) is cut into windows of ``window`` = 16 frames (0.64 s
  at 25 fps) with stride ``stride`` = 8. The real set is all windows of the real listener
  reactions ``listener`` (N, T, 25); the generated set is all windows of all predictions
  ``pred`` (N, K, T, 25).
* **Feature of a window** (75 values): the window mean of each of the 25 attributes (what
  the face shows), the mean first difference of each attribute (its drift inside the
  window), and the root mean square of the first differences (how much it moves).
* **Score** = the Fréchet distance between Gaussians fitted to the two feature sets,
  ``|mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r^1/2 S_g S_r^1/2)^1/2)``, with population
  covariances (so repeating a set K times does not change it).

Identical sets score 0 (up to rounding); the score grows when generated reactions are
smoothed (less movement), shuffled in time (more, incoherent movement), offset in value or
replaced by noise. Lower is better, like FRRea.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from threadpoolctl import threadpool_limits

WINDOW = 16
STRIDE = 8


@njit(cache=True, parallel=True)
def _features_kernel(flat, window, stride, out):
    S, T, C = flat.shape
    nw = out.shape[1]
    for q in prange(S):
        x = flat[q]
        csum = np.zeros((T + 1, C))
        dsq = np.zeros((T, C))
        for t in range(T):
            for c in range(C):
                csum[t + 1, c] = csum[t, c] + x[t, c]
        for t in range(1, T):
            for c in range(C):
                d = np.float64(x[t, c]) - np.float64(x[t - 1, c])
                dsq[t, c] = dsq[t - 1, c] + d * d
        for w in range(nw):
            s0 = w * stride
            e = s0 + window
            for c in range(C):
                out[q, w, c] = (csum[e, c] - csum[s0, c]) / window
                out[q, w, C + c] = (np.float64(x[e - 1, c]) - np.float64(x[s0, c])) / (window - 1)
                out[q, w, 2 * C + c] = math.sqrt(max(dsq[e - 1, c] - dsq[s0, c], 0.0)
                                                 / (window - 1))


def window_features(seqs: np.ndarray, window: int = WINDOW, stride: int = STRIDE
                    ) -> np.ndarray:
    """(..., T, 25) sequences -> (M, 75) float64 window features (see the module doc).

    Window sums come from cumulative sums (compiled, parallel over sequences).
    """
    seqs = np.asarray(seqs)
    T, C = seqs.shape[-2:]
    if seqs.shape[-2] < window:
        raise ValueError(f"FRRea needs at least {window} frames per sequence, got {T}")
    flat = np.ascontiguousarray(seqs.reshape(-1, T, C), dtype=np.float32)
    out = np.empty((flat.shape[0], (T - window) // stride + 1, 3 * C))
    _features_kernel(flat, window, stride, out)
    return out.reshape(-1, 3 * C)


def gaussian_stats(seqs: np.ndarray, window: int = WINDOW, stride: int = STRIDE,
                   chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population covariance of the window features of (..., T, 25) sequences,
    accumulated over chunks of sequences (memory stays small for REACT-sized inputs).

    The (75 x 75) Gram products run on one BLAS thread: they take milliseconds that way,
    while OpenBLAS's threads, spinning against the numba threads or other processes on a
    2-core machine, made them take seconds (measured: 25 ms vs 3.2 s for 92,000 windows).
    """
    with threadpool_limits(1, user_api="blas"):
        return _gaussian_stats(np.asarray(seqs), window, stride, chunk)


def _gaussian_stats(seqs: np.ndarray, window: int, stride: int, chunk: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    T, C = seqs.shape[-2:]
    flat = seqs.reshape(-1, T, C)
    shift = None
    count = 0
    total = None
    outer = None
    for s0 in range(0, flat.shape[0], chunk):
        feats = window_features(flat[s0:s0 + chunk], window, stride)
        if shift is None:
            shift = feats.mean(axis=0)  # shifted sums keep the covariance well conditioned
            total = np.zeros_like(shift)
            outer = np.zeros((len(shift), len(shift)))
        centred = feats - shift
        count += len(feats)
        total += centred.sum(axis=0)
        outer += centred.T @ centred
    mean_shifted = total / count
    cov = outer / count - np.outer(mean_shifted, mean_shifted)
    return shift + mean_shifted, (cov + cov.T) / 2


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray
                     ) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2) (symmetric-root form, stable
    for singular covariances)."""
    root1 = _sqrt_psd(cov1)
    middle = root1 @ cov2 @ root1
    tr_cross = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_cross)
    return max(value, 0.0)


def attribute_frechet(pred: np.ndarray, listener: np.ndarray, window: int = WINDOW,
                      stride: int = STRIDE) -> float:
    """FRRea (weight-free) of generated ``pred`` (N, K, T, 25) against real ``listener``
    (N', T', 25) reactions."""
    real = gaussian_stats(listener, window, stride)
    fake = gaussian_stats(pred, window, stride)
    return frechet_distance(real[0], real[1], fake[0], fake[1])

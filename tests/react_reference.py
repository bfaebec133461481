"""Naive reference implementations of the REACT metrics, for tests only.

Straightforward loops over the definitions of docs/react-protocol.md section 4, written the
way the official REACT code computes them (``tslearn.metrics.dtw`` for DTW, ``np.corrcoef``
per column, torch float32 for the TLCC reduction). Slow on purpose: nothing clever to trust.
"""

from __future__ import annotations

import numpy as np
import torch
from tslearn.metrics import dtw

GROUPS = [(0, 15, 1 / 15), (15, 17, 1.0), (17, 25, 1 / 8)]


def _pearson_nan_to_zero(a: np.ndarray, b: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.cov(a, b)
        d = np.sqrt(np.diag(c))
        r = c[0, 1] / d[0] / d[1]
    return float(np.clip(np.nan_to_num(r), -1.0, 1.0))


def ccc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    values = []
    for c in range(y_true.shape[1]):
        t, p = y_true[:, c], y_pred[:, c]
        r = _pearson_nan_to_zero(t, p)
        num = 2 * r * np.std(t) * np.std(p)
        den = np.var(t) + np.var(p) + (np.mean(t) - np.mean(p)) ** 2
        values.append(num / (den + 1e-8))
    return float(np.mean(values))


def pearson(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean([_pearson_nan_to_zero(y_true[:, c], y_pred[:, c])
                          for c in range(y_true.shape[1])]))


def weighted_dtw(x: np.ndarray, y: np.ndarray) -> float:
    return sum(w * dtw(x.astype(np.float32)[:, a:b], y.astype(np.float32)[:, a:b])
               for a, b, w in GROUPS)


def _appropriate(neighbours: np.ndarray, k: int) -> np.ndarray:
    return np.argwhere(neighbours[k] == 1).reshape(-1)


def fr_corr(pred, listener, neighbours) -> float:
    per_speaker = []
    for k in range(pred.shape[0]):
        total = 0.0
        for i in range(pred.shape[1]):
            total += max(ccc(listener[j], pred[k, i]) for j in _appropriate(neighbours, k))
        per_speaker.append(total)
    return float(np.mean(per_speaker))


def fr_dist(pred, listener, neighbours) -> float:
    per_speaker = []
    for k in range(pred.shape[0]):
        total = 0.0
        for i in range(pred.shape[1]):
            total += min(weighted_dtw(pred[k, i], listener[j])
                         for j in _appropriate(neighbours, k))
        per_speaker.append(total)
    return float(np.mean(per_speaker))


def pcc(pred, listener, neighbours) -> float:
    values = []
    for k in range(pred.shape[0]):
        for i in range(pred.shape[1]):
            values.append(max(pearson(listener[j], pred[k, i])
                              for j in _appropriate(neighbours, k)))
    return float(np.mean(values))


def fr_div(pred) -> float:
    N, K = pred.shape[:2]
    if K < 2:
        return 0.0
    per_speaker = []
    for k in range(N):
        flat = pred[k].reshape(K, -1).astype(np.float64)
        total = sum(np.sum((flat[a] - flat[b]) ** 2) for a in range(K) for b in range(K)
                    if a != b)
        per_speaker.append(total / (K * (K - 1) * flat.shape[1]))
    return float(np.mean(per_speaker))


def fr_dvs(pred) -> float:
    N, K = pred.shape[:2]
    if N < 2:
        return 0.0
    total = 0.0
    for i in range(K):
        flat = pred[:, i].reshape(N, -1).astype(np.float64)
        total += sum(np.sum((flat[a] - flat[b]) ** 2) for a in range(N) for b in range(N)
                     if a != b)
    return float(total / (N * (N - 1) * K) / flat.shape[1])


def fr_var(pred) -> float:
    values = [np.var(pred[k, i].astype(np.float64), axis=0, ddof=1)
              for k in range(pred.shape[0]) for i in range(pred.shape[1])]
    return float(np.mean(values))


def _shift(x, y, lag):
    if lag > 0:
        return x[lag:], y[:-lag]
    if lag < 0:
        return x[:lag], y[-lag:]
    return x, y


def tlcc_offset(pred_item: np.ndarray, speaker_item: np.ndarray) -> int:
    means = []
    for lag in range(-49, 50):
        values = []
        for c in range(pred_item.shape[1]):
            a, b = _shift(pred_item[:, c], speaker_item[:, c], lag)
            with np.errstate(divide="ignore", invalid="ignore"):
                values.append(float(np.corrcoef(a, b)[0, 1]))
        means.append(torch.mean(torch.Tensor(values)))
    return abs(49 - int(torch.argmax(torch.Tensor(means))))


def tlcc(pred, speaker, first_only: bool = False) -> float:
    offsets = []
    for k in range(pred.shape[0]):
        for i in range(1 if first_only else pred.shape[1]):
            offsets.append(tlcc_offset(pred[k, i], speaker[k]))
    return float(torch.mean(torch.Tensor(offsets)).item())

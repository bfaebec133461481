"""Input checks shared by the metric functions: NumPy or torch in, float32 NumPy out."""

from __future__ import annotations

from typing import Any

import numpy as np

NCOL = 25


def as_array(x: Any, name: str, ndim: int) -> np.ndarray:
    """``x`` (NumPy array, torch tensor or nested sequence) as a float32 NumPy array.

    Does not copy an array that is already float32. Raises ``ValueError`` on a wrong number
    of dimensions, a last axis other than 25, or non-finite values.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {arr.shape}")
    if arr.shape[-1] != NCOL:
        raise ValueError(f"{name}: the last axis must hold the {NCOL} facial attributes, "
                         f"got shape {arr.shape}")
    if arr.size and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name}: non-finite value at index {tuple(int(v) for v in bad)}")
    return arr


def as_pred(pred: Any) -> np.ndarray:
    arr = as_array(pred, "pred", 4)
    if arr.shape[0] < 1 or arr.shape[1] < 1 or arr.shape[2] < 2:
        raise ValueError(f"pred: need N >= 1, K >= 1 and T >= 2, got shape {arr.shape}")
    return arr


def as_sequences(x: Any, name: str, pred: np.ndarray, *, same_length: bool = True,
                 same_count: bool = True) -> np.ndarray:
    arr = as_array(x, name, 3)
    if arr.shape[0] < 1:
        raise ValueError(f"{name}: no sequences")
    if same_count and arr.shape[0] != pred.shape[0]:
        raise ValueError(f"{name}: {arr.shape[0]} items but pred has {pred.shape[0]}")
    if same_length and arr.shape[1] != pred.shape[2]:
        raise ValueError(f"{name}: {arr.shape[1]} frames but pred has {pred.shape[2]}")
    return arr


def as_neighbours(neighbours: Any, n: int, m: int | None = None) -> np.ndarray:
    """The appropriateness matrix as bool (N, M) (M = N by default): row k lists the
    listeners appropriate for speaker k; every row must have at least one."""
    if hasattr(neighbours, "detach") and hasattr(neighbours, "cpu"):
        neighbours = neighbours.detach().cpu().numpy()
    arr = np.asarray(neighbours)
    m = n if m is None else m
    if arr.shape != (n, m):
        raise ValueError(f"neighbours: expected shape ({n}, {m}), got {arr.shape}")
    mask = arr == 1 if arr.dtype != bool else arr
    empty = np.flatnonzero(~mask.any(axis=1))
    if empty.size:
        raise ValueError(
            f"neighbours: {empty.size} speaker(s) have no appropriate reaction (rows "
            f"{', '.join(str(int(v)) for v in empty[:5])}{' ...' if empty.size > 5 else ''})")
    return mask

"""Windowing of clips and overlap-averaged stitching of window predictions.

The REGNN graph has one node per facial attribute and a node feature of ``size`` frames, so a
750-frame clip is cut into windows (default ``size=50``, ``stride=25``, as the authors' code)
and the window predictions are stitched back by averaging the frames that several windows
cover. When ``(T - size)`` is not a multiple of ``stride`` a last window aligned to the clip's
end is added, so every frame is covered whatever the clip length.

Everything works on the last-but-one (time) axis of NumPy arrays or torch tensors:
``make_windows(x (..., T, F)) -> (..., W, size, F)`` and
``stitch(w (..., W, size, F), T) -> (..., T, F)``.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from regnn.errors import ConfigError

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def window_starts(n_frames: int, size: int, stride: int) -> np.ndarray:
    """Start frames of the windows covering ``n_frames`` (last window aligned to the end)."""
    if size < 1 or stride < 1:
        raise ConfigError(f"window size and stride must be >= 1, got size={size}, stride={stride}")
    if stride > size:
        raise ConfigError(f"window stride ({stride}) larger than the window ({size}) leaves gaps")
    if n_frames < size:
        raise ConfigError(f"clip of {n_frames} frames is shorter than one window ({size} frames)")
    starts = list(range(0, n_frames - size + 1, stride))
    if starts[-1] + size < n_frames:
        starts.append(n_frames - size)
    return np.asarray(starts, dtype=np.int64)


def _frame_index(n_frames: int, size: int, stride: int) -> np.ndarray:
    starts = window_starts(n_frames, size, stride)
    return starts[:, None] + np.arange(size)[None, :]  # (W, size)


def make_windows(x: ArrayT, size: int, stride: int) -> ArrayT:
    """Cut ``x`` of shape ``(..., T, F)`` into ``(..., W, size, F)`` windows (a gather, a copy)."""
    idx = _frame_index(x.shape[-2], size, stride)
    if isinstance(x, torch.Tensor):
        return x[..., torch.as_tensor(idx, device=x.device), :]
    return x[..., idx, :]


def coverage(n_frames: int, size: int, stride: int) -> np.ndarray:
    """How many windows cover each frame, shape ``(T,)``."""
    counts = np.zeros(n_frames, dtype=np.int64)
    np.add.at(counts, _frame_index(n_frames, size, stride).ravel(), 1)
    return counts


def stitch(windows: ArrayT, n_frames: int, stride: int) -> ArrayT:
    """Overlap-average ``(..., W, size, F)`` window values back to a ``(..., T, F)`` sequence.

    Each output frame is the mean of the values that the windows covering it give it.
    """
    size = windows.shape[-2]
    idx = _frame_index(n_frames, size, stride)
    if idx.shape[0] != windows.shape[-3]:
        raise ConfigError(
            f"{windows.shape[-3]} windows given but a {n_frames}-frame clip with size {size} and "
            f"stride {stride} has {idx.shape[0]}"
        )
    counts = coverage(n_frames, size, stride)
    lead = windows.shape[:-3]
    n_feat = windows.shape[-1]
    flat_idx = idx.ravel()
    if isinstance(windows, torch.Tensor):
        w = windows.reshape(*lead, -1, n_feat)
        out = windows.new_zeros(*lead, n_frames, n_feat)
        out = out.index_add(-2, torch.as_tensor(flat_idx, device=windows.device), w)
        return out / torch.as_tensor(counts, dtype=windows.dtype, device=windows.device)[:, None]
    w = np.asarray(windows).reshape(*lead, -1, n_feat)
    out = np.zeros((*lead, n_frames, n_feat), dtype=np.result_type(w.dtype, np.float32))
    # np.add.at over the frame axis: move it first to keep the call simple
    out_t = np.moveaxis(out, -2, 0)
    np.add.at(out_t, flat_idx, np.moveaxis(w, -2, 0))
    return (out / counts[:, None]).astype(w.dtype, copy=False)

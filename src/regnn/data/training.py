"""Training samples for appropriateness-aware models: speaker windows with M appropriate reactions.

Works on plain arrays (so it is testable without files) and on a ``ReactSplit`` through
:meth:`AppropriateWindows.from_split`. A sample is one speaker window ``(item i, window w)``:

* ``face (D, F_face)`` and ``audio (D, F_audio)``: the speaker's features in the window;
* ``reactions (M, D, 25)``: slot 0 is item i's own listener (always appropriate: the matrix
  diagonal), slots 1.. are up to ``M - 1`` other appropriate listeners drawn without
  replacement from ``{j != i : A[i, j]}`` (the authors sample up to 10), at the same window;
* ``valid (M,)``: which slots hold a reaction (the rest are zero padding).

Draws depend only on ``(seed, epoch, index)``, so a run is reproducible whatever the batch
order or worker count. Batches are fetched in one vectorised ``__getitems__`` call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from regnn.data.windows import window_starts
from regnn.errors import DataError


class AppropriateWindows(Dataset):
    def __init__(self, speakers: np.ndarray, audio: np.ndarray | None, listeners: np.ndarray,
                 neighbours: np.ndarray, window: int = 50, stride: int = 25,
                 appropriate: int = 10, seed: int = 0) -> None:
        speakers = np.asarray(speakers, dtype=np.float32)
        listeners = np.asarray(listeners, dtype=np.float32)
        neighbours = np.asarray(neighbours).astype(bool)
        n = speakers.shape[0]
        if listeners.shape[:2] != speakers.shape[:2]:
            raise DataError(f"speaker array {speakers.shape} and listener array {listeners.shape} "
                            "do not match in items and frames")
        if neighbours.shape != (n, n):
            raise DataError(f"appropriateness matrix has shape {neighbours.shape}, "
                            f"expected ({n}, {n})")
        if audio is not None:
            audio = np.asarray(audio, dtype=np.float32)
            if audio.shape[:2] != speakers.shape[:2]:
                raise DataError(f"audio features {audio.shape} do not match speakers "
                                f"{speakers.shape}")
        self.speakers, self.audio, self.listeners = speakers, audio, listeners
        self.window, self.stride, self.m, self.seed = window, stride, appropriate, seed
        self.starts = window_starts(speakers.shape[1], window, stride)
        self.epoch = 0
        others = neighbours & ~np.eye(n, dtype=bool)
        self.candidates = [np.flatnonzero(row) for row in others]

    @classmethod
    def from_split(cls, split: Any, window: int = 50, stride: int = 25, appropriate: int = 10,
                   seed: int = 0, use_audio: bool = True) -> AppropriateWindows:
        """Build from a :class:`regnn.data.react.ReactSplit` (loads the whole split once)."""
        audio = np.stack([split.audio(i) for i in range(len(split))]) if use_audio else None
        return cls(split.speakers(), audio, split.listeners(), split.neighbours, window, stride,
                   appropriate, seed)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.speakers.shape[0] * len(self.starts)

    def _draw(self, index: int) -> np.ndarray:
        item = index // len(self.starts)
        cand = self.candidates[item]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        take = min(self.m - 1, cand.size)
        chosen = rng.choice(cand, size=take, replace=False) if take else cand[:0]
        out = np.full(self.m, -1, dtype=np.int64)
        out[0] = item
        out[1:1 + take] = chosen
        return out

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        items, wins = np.divmod(idx, len(self.starts))
        frames = self.starts[wins][:, None] + np.arange(self.window)  # (B, D)
        slots = np.stack([self._draw(int(i)) for i in idx])  # (B, M)
        valid = slots >= 0
        reactions = self.listeners[np.where(valid, slots, 0)[:, :, None], frames[:, None, :]]
        reactions[~valid] = 0.0
        batch = {
            "face": torch.from_numpy(self.speakers[items[:, None], frames]),
            "reactions": torch.from_numpy(reactions),
            "valid": torch.from_numpy(valid),
            "index": torch.from_numpy(idx),
        }
        if self.audio is not None:
            batch["audio"] = torch.from_numpy(self.audio[items[:, None], frames])
        return batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        batch = self.__getitems__([index])
        return {k: v[0] for k, v in batch.items()}


def collate_prebatched(batch: Any) -> Any:
    """``collate_fn`` for datasets whose ``__getitems__`` already returns a batch."""
    return batch


class ClipItems(Dataset):
    """Whole clips for validation/generation: ``{"face", "audio", "index"}`` per item."""

    def __init__(self, speakers: np.ndarray, audio: np.ndarray | None,
                 indices: np.ndarray | None = None) -> None:
        self.speakers = np.asarray(speakers, dtype=np.float32)
        self.audio = None if audio is None else np.asarray(audio, dtype=np.float32)
        self.indices = np.arange(len(self.speakers)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        k = int(self.indices[i])
        out: dict[str, Any] = {"face": torch.from_numpy(self.speakers[k]), "index": k}
        if self.audio is not None:
            out["audio"] = torch.from_numpy(self.audio[k])
        return out

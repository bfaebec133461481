"""Training samples for appropriateness-aware models: speaker windows with M appropriate reactions.

Works on plain arrays (so it is testable without files) and on a ``ReactSplit`` through
:meth:`AppropriateWindows.from_split`. A sample is one speaker window ``(item i, window w)``:

* ``face (D, F_face)`` and ``audio (D, F_audio)``: the speaker's features in the window;
* ``reactions (M, D, 25)``: slot 0 is item i's own listener (always appropriate: the matrix
  diagonal), slots 1.. are up to ``M - 1`` other appropriate listeners drawn without
  replacement from ``{j != i : A[i, j]}`` (the authors sample up to 10), at the same window;
* ``valid (M,)``: which slots hold a reaction (the rest are zero padding).

**Clip chunks** (``clip_windows = c > 1``): a sample is then ``c`` consecutive windows of one
speaker item whose ``M`` slots hold the *same* listeners in every window, and the batch says
which windows belong together (``group``). A model can then decide which of its predicted
components an appropriate listener belongs to over several seconds of that listener's
reaction instead of one window at a time (see :func:`regnn.models.afrdl.mixture_loss`). The
chunks tile each clip with a phase drawn per epoch, so chunk boundaries move between epochs.

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
                 appropriate: int = 10, seed: int = 0, clip_windows: int = 1) -> None:
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
        if clip_windows < 1:
            raise DataError(f"clip_windows must be >= 1, got {clip_windows}")
        # a chunk cannot be longer than the clip
        self.chunk = min(int(clip_windows), len(self.starts))
        self.epoch = 0
        others = neighbours & ~np.eye(n, dtype=bool)
        self.candidates = [np.flatnonzero(row) for row in others]

    @classmethod
    def from_split(cls, split: Any, window: int = 50, stride: int = 25, appropriate: int = 10,
                   seed: int = 0, use_audio: bool = True, clip_windows: int = 1
                   ) -> AppropriateWindows:
        """Build from a :class:`regnn.data.react.ReactSplit` (loads the whole split once)."""
        audio = np.stack([split.audio(i) for i in range(len(split))]) if use_audio else None
        return cls(split.speakers(), audio, split.listeners(), split.neighbours, window, stride,
                   appropriate, seed, clip_windows)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def chunks_per_item(self) -> int:
        return -(-len(self.starts) // self.chunk)

    def __len__(self) -> int:
        """Samples per epoch: windows, or chunks of ``clip_windows`` windows."""
        if self.chunk == 1:
            return self.speakers.shape[0] * len(self.starts)
        return self.speakers.shape[0] * self.chunks_per_item

    def _draw(self, index: int, item: int | None = None) -> np.ndarray:
        item = index // len(self.starts) if item is None else item
        cand = self.candidates[item]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        take = min(self.m - 1, cand.size)
        chosen = rng.choice(cand, size=take, replace=False) if take else cand[:0]
        out = np.full(self.m, -1, dtype=np.int64)
        out[0] = item
        out[1:1 + take] = chosen
        return out

    def _chunk_windows(self, index: int) -> tuple[int, np.ndarray]:
        """Item and window indices of chunk ``index`` (``clip_windows`` consecutive windows;
        the tiling's phase is drawn per item and epoch, the edge chunks are clamped)."""
        item, j = divmod(index, self.chunks_per_item)
        n, c = len(self.starts), self.chunk
        phase = int(np.random.default_rng((self.seed, self.epoch, item, 1)).integers(c))
        start = min(max(j * c - phase, 0), n - c)
        return item, np.arange(start, start + c)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        if self.chunk == 1:
            items, wins = np.divmod(idx, len(self.starts))
            slots = np.stack([self._draw(int(i)) for i in idx])  # (B, M)
            group = np.arange(len(idx))
        else:  # chunks: c windows of one item, the same M listeners in each
            chunks = [self._chunk_windows(int(i)) for i in idx]
            items = np.repeat([it for it, _ in chunks], self.chunk)
            wins = np.concatenate([w for _, w in chunks])
            slots = np.repeat(np.stack([self._draw(int(i), it) for i, (it, _) in
                                        zip(idx, chunks)]), self.chunk, axis=0)
            group = np.repeat(np.arange(len(idx)), self.chunk)
            idx = items * len(self.starts) + wins
        frames = self.starts[wins][:, None] + np.arange(self.window)  # (B, D)
        valid = slots >= 0
        reactions = self.listeners[np.where(valid, slots, 0)[:, :, None], frames[:, None, :]]
        reactions[~valid] = 0.0
        batch = {
            "face": torch.from_numpy(self.speakers[items[:, None], frames]),
            "reactions": torch.from_numpy(reactions),
            "valid": torch.from_numpy(valid),
            "index": torch.from_numpy(idx),
            "group": torch.from_numpy(group),
        }
        if self.audio is not None:
            batch["audio"] = torch.from_numpy(self.audio[items[:, None], frames])
        return batch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """One window (or, with clip chunks, the chunk's windows as a small batch)."""
        batch = self.__getitems__([index])
        return batch if self.chunk > 1 else {k: v[0] for k, v in batch.items()}


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

"""Reader of the REACT 2023/2024 layout (``react-protocol.md`` section 2).

>>> ds = ReactSplit("data/", "test")          # doctest: +SKIP
>>> len(ds)                                   # 2n mirrored items
>>> ds[0]["speaker_face"].shape, ds[0]["speaker_audio"].shape, ds[0]["listener"].shape
((750, 25), (750, 64), (750, 25))

Items are mirrored as the challenge evaluates them: ``speakers = speaker_paths +
listener_paths`` and ``listeners = listener_paths + speaker_paths``, so a split of n rows has
2n items and its appropriateness matrix is 2n x 2n in that order. ``mirror=False`` keeps only
the n original directions (the appropriateness matrix is then cut to its top-left block).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regnn import schema
from regnn.data import layout
from regnn.data.audio import N_MELS, AudioFeatureCache, default_cache_dir
from regnn.errors import DataError


@dataclass(frozen=True)
class Item:
    """One (speaker, listener) direction of a dyad clip."""

    index: int
    speaker_path: str
    listener_path: str


class ReactSplit:
    """A ``torch.utils.data.Dataset``-style view of one split of a REACT-layout dataset.

    ``__getitem__`` returns a dict of float32 NumPy arrays (``speaker_face`` (750, 25),
    ``speaker_audio`` (750, 64) or (750, 0) with ``audio=False``, ``listener`` (750, 25),
    ``index``), plus ``speaker_frames`` (750, H, W, 3) uint8 with ``video=True`` and
    ``speaker_3dmm`` (750, 58) with ``threedmm=True``. Attribute CSVs are read once and kept
    in memory; audio features are cached on disk (see :class:`AudioFeatureCache`).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        mirror: bool = True,
        audio: bool = True,
        video: bool = False,
        threedmm: bool = False,
        frames: int = schema.CLIP_FRAMES,
        cache_dir: str | Path | None = None,
        check_ranges: bool = True,
        video_size: int = 64,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError("dataset folder not found", path=self.root, kind="missing-file")
        if split not in layout.SPLITS:
            raise DataError(f"unknown split {split!r}; expected one of {layout.SPLITS}",
                            path=self.root, kind="bad-split")
        self.split = split
        self.mirror = mirror
        self.use_audio = audio
        self.use_video = video
        self.use_3dmm = threedmm
        self.frames = frames
        self.check_ranges = check_ranges
        self.video_size = video_size
        self.speaker_paths, self.listener_paths = layout.read_split_csv(self.root, split)
        n = len(self.speaker_paths)
        self.n_rows = n
        if mirror:
            spk = self.speaker_paths + self.listener_paths
            lis = self.listener_paths + self.speaker_paths
        else:
            spk, lis = list(self.speaker_paths), list(self.listener_paths)
        self.items = [Item(i, s, li) for i, (s, li) in enumerate(zip(spk, lis))]
        self.cache = AudioFeatureCache(cache_dir or default_cache_dir(self.root), frames)
        self._attrs: dict[str, np.ndarray] = {}
        self._neighbours: np.ndarray | None = None

    # ------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        return len(self.items)

    @property
    def audio_dim(self) -> int:
        return N_MELS if self.use_audio else 0

    # ------------------------------------------------------------------ attributes
    def emotion_path(self, person: str) -> Path:
        found = layout.resolve(self.root, self.split, layout.EMOTION_DIR, person, ".csv")
        if found is None:
            raise DataError("attribute CSV not found (also tried the REACT 2024 spellings "
                            f"{layout.person_path_variants(person)[1:]})",
                            path=layout.expected_path(self.root, self.split, layout.EMOTION_DIR,
                                                      person, ".csv"), kind="missing-file")
        return found

    def attributes(self, person: str) -> np.ndarray:
        """(750, 25) float32 attributes of one person path (read once, then memoised)."""
        arr = self._attrs.get(person)
        if arr is None:
            arr = layout.load_emotion_csv(self.emotion_path(person), self.frames,
                                          self.check_ranges)
            arr.setflags(write=False)
            self._attrs[person] = arr
        return arr

    def speaker(self, i: int) -> np.ndarray:
        return self.attributes(self.items[i].speaker_path)

    def listener(self, i: int) -> np.ndarray:
        return self.attributes(self.items[i].listener_path)

    def speakers(self) -> np.ndarray:
        """(N, 750, 25) attributes of every item's speaker."""
        return np.stack([self.speaker(i) for i in range(len(self))])

    def listeners(self) -> np.ndarray:
        """(N, 750, 25) every item's real listener reaction."""
        return np.stack([self.listener(i) for i in range(len(self))])

    # ------------------------------------------------------------------ audio, video, 3DMM
    def audio_path(self, person: str) -> Path:
        found = layout.resolve(self.root, self.split, layout.AUDIO_DIR, person, ".wav")
        if found is None:
            raise DataError("speaker audio not found", kind="missing-file",
                            path=layout.expected_path(self.root, self.split, layout.AUDIO_DIR,
                                                      person, ".wav"))
        return found

    def audio(self, i: int) -> np.ndarray:
        """(750, 64) log-mel features of item i's speaker (disk-cached)."""
        if not self.use_audio:
            return np.zeros((self.frames, 0), dtype=np.float32)
        return self.cache.features(self.audio_path(self.items[i].speaker_path))

    def frames_of(self, i: int) -> np.ndarray:
        """(750, H, W, 3) uint8 video frames of item i's speaker (PNG folder or MP4)."""
        from regnn.data.video import read_frames

        person = self.items[i].speaker_path
        found = layout.resolve(self.root, self.split, layout.VIDEO_DIR, person, "")
        if found is None or not found.is_dir():
            found = layout.resolve(self.root, self.split, layout.VIDEO_DIR, person, ".mp4")
        if found is None:
            raise DataError("speaker video not found (neither a PNG frame folder nor .mp4)",
                            kind="missing-file",
                            path=layout.expected_path(self.root, self.split, layout.VIDEO_DIR,
                                                      person, ""))
        return read_frames(found, self.frames, self.video_size)

    def coeffs_3dmm(self, i: int) -> np.ndarray:
        """(750, 58) float32 3DMM coefficients of item i's speaker."""
        person = self.items[i].speaker_path
        found = layout.resolve(self.root, self.split, layout.THREEDMM_DIR, person, ".npy")
        if found is None:
            raise DataError("3DMM coefficients not found", kind="missing-file",
                            path=layout.expected_path(self.root, self.split,
                                                      layout.THREEDMM_DIR, person, ".npy"))
        arr = np.load(found).astype(np.float32)
        arr = arr.reshape(arr.shape[0], -1)
        if arr.shape[0] < self.frames:
            raise DataError(f"{arr.shape[0]} frames; expected at least {self.frames}",
                            path=found, kind="too-few-rows")
        return arr[: self.frames]

    # ------------------------------------------------------------------ appropriateness
    @property
    def neighbours(self) -> np.ndarray:
        """(N, N) bool: ``A[k, j]`` = listener j's real reaction is appropriate for speaker k."""
        if self._neighbours is None:
            full = layout.load_neighbours(self.root, self.split, self.speaker_paths)
            n = self.n_rows
            self._neighbours = full if self.mirror else full[:n, :n]
        return self._neighbours

    def appropriate(self, i: int) -> np.ndarray:
        """Item indices j whose listener reaction is appropriate for item i's speaker."""
        return np.flatnonzero(self.neighbours[i])

    def appropriate_reactions(self, i: int) -> np.ndarray:
        """(M, 750, 25) the appropriate real listener reactions of item i's speaker."""
        return np.stack([self.listener(j) for j in self.appropriate(i)])

    # ------------------------------------------------------------------ Dataset protocol
    def __getitem__(self, i: int) -> dict[str, np.ndarray | int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} items")
        i = i % len(self)
        out: dict[str, np.ndarray | int] = {
            "speaker_face": self.speaker(i),
            "speaker_audio": self.audio(i),
            "listener": self.listener(i),
            "index": i,
        }
        if self.use_video:
            out["speaker_frames"] = self.frames_of(i)
        if self.use_3dmm:
            out["speaker_3dmm"] = self.coeffs_3dmm(i)
        return out

    def __repr__(self) -> str:
        return (f"ReactSplit(root={str(self.root)!r}, split={self.split!r}, items={len(self)}, "
                f"mirror={self.mirror})")

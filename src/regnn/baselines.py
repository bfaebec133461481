"""The trivial REACT references (``regnn baseline``), written in the prediction layout.

========  ====================================================================================
GT        the item's own real listener reaction, K times (appropriate by construction;
          FRDist 0, FRDiv 0)
Random    every frame drawn independently and uniformly inside the attribute ranges
          (expression probabilities renormalised), K different draws
Mime      the speaker's own behaviour copied as the reaction, K times
MeanSeq   the frame-by-frame mean of the training split's listener reactions (750, 25), K times
MeanFr    the mean training listener frame (25,), held for all 750 frames, K times
========  ====================================================================================

The training means come from the ``train`` split, as the official references do. The
deterministic references repeat one reaction K times (their FRDiv is 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from regnn import schema
from regnn.errors import ConfigError
from regnn.utils.io import save_npy, write_json

BASELINES: tuple[str, ...] = ("gt", "random", "mime", "meanseq", "meanfr")


def training_means(root: str | Path, frames: int = schema.CLIP_FRAMES
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(frames, 25) mean sequence and (25,) mean frame of the train split's listeners."""
    from regnn.data.react import ReactSplit

    listeners = ReactSplit(root, "train", audio=False, frames=frames).listeners()
    seq = listeners.astype(np.float64).mean(axis=0)
    return seq.astype(np.float32), seq.mean(axis=0).astype(np.float32)


def baseline_predictions(name: str, speakers: np.ndarray, listeners: np.ndarray, samples: int,
                         *, rng: np.random.Generator | None = None,
                         mean_seq: np.ndarray | None = None,
                         mean_frame: np.ndarray | None = None) -> np.ndarray:
    """(N, samples, T, 25) float32 predictions of reference ``name`` for N items."""
    name = name.lower()
    if samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    n, t, c = listeners.shape
    shape = (n, samples, t, c)
    if name == "gt":
        return np.repeat(listeners[:, None], samples, axis=1).astype(np.float32)
    if name == "mime":
        return np.repeat(speakers[:, None], samples, axis=1).astype(np.float32)
    if name == "random":
        rng = rng if rng is not None else np.random.default_rng(0)
        raw = rng.uniform(schema.LOW, schema.HIGH, size=shape).astype(np.float32)
        return schema.clip_to_ranges(raw)
    if name == "meanseq":
        if mean_seq is None:
            raise ConfigError("meanseq needs the training mean sequence")
        return np.broadcast_to(mean_seq[:t], shape).astype(np.float32)
    if name == "meanfr":
        if mean_frame is None:
            raise ConfigError("meanfr needs the training mean frame")
        return np.broadcast_to(mean_frame, shape).astype(np.float32)
    raise ConfigError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")


def write_baseline(name: str, root: str | Path, split: str, out_dir: str | Path, *,
                   samples: int = 10, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Write reference ``name`` for every mirrored item of ``split`` as
    ``OUT/<split>/<speaker_path>.npy`` (K, 750, 25) and ``OUT/baseline.json``."""
    from regnn.data.react import ReactSplit

    name = name.lower()
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    ds = ReactSplit(root, split, audio=False)
    mean_seq = mean_frame = None
    if name in ("meanseq", "meanfr"):
        mean_seq, mean_frame = training_means(root)
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    items = range(len(ds))
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc=f"baseline {name}", unit="item", leave=False)
    for i in items:
        pred = baseline_predictions(name, ds.speaker(i)[None], ds.listener(i)[None], samples,
                                    rng=rng, mean_seq=mean_seq, mean_frame=mean_frame)[0]
        save_npy(out / split / f"{ds.items[i].speaker_path}.npy", pred)
    summary = {"baseline": name, "split": split, "items": len(ds), "K": samples,
               "seed": seed, "data": str(Path(root).resolve())}
    write_json(out / "baseline.json", summary)
    return summary

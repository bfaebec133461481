"""The references: the REACT challenge's trivial ones, and a retrieval reference (``nn``).

Each returns predictions ``(N, K, T, 25)`` float32 for the N mirrored items of a split:

- ``gt``: every one of the K reactions is the item's real listener reaction (FRDist = 0,
  FRDiv = 0 by construction);
- ``random``: as the official baseline: AU occurrences uniform in {0, 1}, valence/arousal a
  normal(0, 0.5) truncated to [-1, 1], expression probabilities uniform then normalised;
  drawn independently for every frame, reaction and item;
- ``mime``: the speaker's own attributes, copied K times;
- ``meanseq``: the frame-wise mean sequence of the **train** split's listener reactions;
- ``meanfr``: the mean frame of the train split's listener reactions, repeated over time;
- ``nn`` (this project's, not a REACT reference): a non-parametric retrieval reference. For
  each speaker, the real reactions of the **train** listeners whose speakers behave most like
  it, nearest first, by the distance of ``regnn data neighbours`` (default method, see
  :mod:`regnn.data.neighbours`), K of them (cycled when the train split has fewer). It needs
  no training, reproduces real faces exactly, and is as good as the similarity of speaker
  behaviours across the two splits: the bar a learned generator should clear.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regnn import schema
from regnn.errors import ConfigError
from regnn.results import save_prediction
from regnn.utils.io import write_json

if TYPE_CHECKING:
    from regnn.data.react import ReactSplit

TRIVIAL = ("gt", "random", "mime", "meanseq", "meanfr")
#: every reference ``regnn baseline`` writes: the trivial ones and the retrieval reference
REFERENCES = (*TRIVIAL, "nn")


def random_reactions(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Random attributes of ``shape + (25,)`` following the official ``baseline_random``."""
    aus = rng.integers(0, 2, size=(*shape, 15)).astype(np.float32)
    va = rng.normal(0.0, 0.5, size=(*shape, 2))
    bad = np.abs(va) > 1.0
    while bad.any():  # truncated normal by rejection, as the official sampler
        va[bad] = rng.normal(0.0, 0.5, size=int(bad.sum()))
        bad = np.abs(va) > 1.0
    ex = rng.random(size=(*shape, 8))
    ex /= ex.sum(axis=-1, keepdims=True)
    return np.concatenate([aus, va.astype(np.float32), ex.astype(np.float32)], axis=-1)


def trivial_predictions(name: str, split: ReactSplit, train: ReactSplit | None = None,
                        k: int = 10, seed: int = 0) -> np.ndarray:
    """Predictions of the trivial reference ``name`` for every item of ``split``."""
    name = name.lower()
    if name not in TRIVIAL:
        raise ConfigError(f"unknown reference {name!r}; expected one of {TRIVIAL}")
    if k < 1:
        raise ConfigError(f"K must be >= 1, got {k}")
    n, T = len(split), split.frames
    if name == "gt":
        out = np.repeat(split.listeners()[:, None], k, axis=1)
    elif name == "mime":
        out = np.repeat(split.speakers()[:, None], k, axis=1)
    elif name == "random":
        out = random_reactions((n, k, T), np.random.default_rng(seed))
    else:
        if train is None:
            raise ConfigError(f"the {name} reference needs the train split's listeners")
        listeners = train.listeners().astype(np.float64)
        mean = listeners.mean(axis=0) if name == "meanseq" else listeners.mean(axis=(0, 1))
        out = np.broadcast_to(mean.astype(np.float32), (n, k, T, schema.NUM_ATTRIBUTES))
    return np.ascontiguousarray(out, dtype=np.float32)


def nearest_neighbour_predictions(speakers: np.ndarray, train_speakers: np.ndarray,
                                  train_listeners: np.ndarray, k: int = 10,
                                  method: str | None = None) -> np.ndarray:
    """The ``nn`` reference: ``(N, K, T, 25)`` train listener reactions whose speakers are the
    K nearest to each of the N ``speakers`` (``regnn data neighbours`` distance ``method``,
    ``motion`` when None; standardised over both sets together)."""
    from regnn.data.neighbours import DEFAULT_DISTANCE, distance_matrix

    if k < 1:
        raise ConfigError(f"K must be >= 1, got {k}")
    n, m = len(speakers), len(train_speakers)
    if m == 0:
        raise ConfigError("the nn reference needs at least one train item")
    both = np.concatenate([np.asarray(speakers, np.float32),
                           np.asarray(train_speakers, np.float32)])
    d = distance_matrix(both, method or DEFAULT_DISTANCE)[:n, n:]  # (N, M)
    order = np.argsort(d, axis=1, kind="stable")[:, np.arange(k) % m]  # nearest first, cycled
    return np.ascontiguousarray(np.asarray(train_listeners, np.float32)[order])


def reference_predictions(name: str, split: ReactSplit, train: ReactSplit | None = None,
                          k: int = 10, seed: int = 0) -> np.ndarray:
    """Predictions of reference ``name`` (:data:`REFERENCES`) for every item of ``split``."""
    if name.lower() != "nn":
        return trivial_predictions(name, split, train, k=k, seed=seed)
    if train is None:
        raise ConfigError("the nn reference needs the train split")
    return nearest_neighbour_predictions(split.speakers(), train.speakers(), train.listeners(),
                                         k)


def write_baseline(name: str, root: str | Path, split: str, out_dir: str | Path, *,
                   samples: int = 10, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Write reference ``name`` for every mirrored item of ``split`` as
    ``OUT/<split>/<speaker_path>.npy`` (K, 750, 25) and ``OUT/baseline.json``."""
    from regnn.data.react import ReactSplit

    name = name.lower()
    if name not in REFERENCES:
        raise ConfigError(f"unknown baseline {name!r}; choose one of {', '.join(REFERENCES)}")
    ds = ReactSplit(root, split, audio=False)
    needs_train = name in ("meanseq", "meanfr", "nn")
    train = ReactSplit(root, "train", audio=False) if needs_train else None
    pred = reference_predictions(name, ds, train, k=samples, seed=seed)
    out = Path(out_dir)
    items = range(len(ds))
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc=f"baseline {name}", unit="item", leave=False)
    for i in items:
        save_prediction(out, split, ds.items[i].speaker_path, pred[i])
    summary = {"baseline": name, "split": split, "items": len(ds), "K": samples,
               "seed": seed, "data": str(Path(root).resolve())}
    write_json(out / "baseline.json", summary)
    return summary

"""The REACT facial attribute vector: one source of truth for names, groups and ranges.

Every frame of a REACT reaction is 25 values at 25 fps (``react-protocol.md`` section 1):

======  =========================  ===================================================
index   group                      names
======  =========================  ===================================================
0-14    AU occurrence, [0, 1]      AU1 AU2 AU4 AU6 AU7 AU9 AU10 AU12 AU14 AU15 AU17
                                   AU23 AU24 AU25 AU26
15-16   affect, [-1, 1]            valence arousal
17-24   expression probabilities   Neutral Happy Sad Surprise Fear Disgust Anger Contempt
        [0, 1], rows sum to 1
======  =========================  ===================================================

A clip holds 751 frames on disk; models and metrics use the first :data:`CLIP_FRAMES` = 750.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AU_NAMES: tuple[str, ...] = (
    "AU1", "AU2", "AU4", "AU6", "AU7", "AU9", "AU10", "AU12",
    "AU14", "AU15", "AU17", "AU23", "AU24", "AU25", "AU26",
)  # fmt: skip
AFFECT_NAMES: tuple[str, ...] = ("valence", "arousal")
EXPRESSION_NAMES: tuple[str, ...] = (
    "Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt",
)  # fmt: skip
ATTRIBUTE_NAMES: tuple[str, ...] = AU_NAMES + AFFECT_NAMES + EXPRESSION_NAMES
NUM_ATTRIBUTES = len(ATTRIBUTE_NAMES)  # 25

AU_SLICE = slice(0, 15)
AFFECT_SLICE = slice(15, 17)
EXPRESSION_SLICE = slice(17, 25)

FPS = 25
CLIP_FRAMES = 750  # frames used by models and metrics
FILE_FRAMES = 751  # frames stored in a released Emotion CSV (some hold 750)


@dataclass(frozen=True)
class AttributeGroup:
    """A contiguous block of the attribute vector with a common value range."""

    name: str
    slice: slice
    low: float
    high: float
    simplex: bool = False  # values are probabilities that sum to one per frame

    @property
    def names(self) -> tuple[str, ...]:
        return ATTRIBUTE_NAMES[self.slice]

    @property
    def size(self) -> int:
        return self.slice.stop - self.slice.start


GROUPS: tuple[AttributeGroup, ...] = (
    AttributeGroup("au", AU_SLICE, 0.0, 1.0),
    AttributeGroup("affect", AFFECT_SLICE, -1.0, 1.0),
    AttributeGroup("expression", EXPRESSION_SLICE, 0.0, 1.0, simplex=True),
)

LOW = np.array([g.low for g in GROUPS for _ in range(g.size)], dtype=np.float32)
HIGH = np.array([g.high for g in GROUPS for _ in range(g.size)], dtype=np.float32)

# Tolerance used when checking that stored values respect their ranges and the simplex.
RANGE_TOL = 1e-3
SIMPLEX_TOL = 1e-2


def index_of(name: str) -> int:
    """Column index of an attribute name (case-insensitive), e.g. ``index_of("AU12") == 7``."""
    lowered = [n.lower() for n in ATTRIBUTE_NAMES]
    try:
        return lowered.index(name.lower())
    except ValueError:
        raise KeyError(f"unknown attribute {name!r}; expected one of {ATTRIBUTE_NAMES}") from None


def clip_to_ranges(x: np.ndarray, renormalise: bool = True) -> np.ndarray:
    """Clip ``(..., 25)`` attributes to their ranges; renormalise expression probabilities.

    Returns a new float32 array. Rows whose expression block sums to ~0 after clipping become
    uniform, so the simplex constraint always holds.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-1] != NUM_ATTRIBUTES:
        raise ValueError(f"last axis must have {NUM_ATTRIBUTES} attributes, got shape {x.shape}")
    out = np.clip(x, LOW, HIGH)
    if renormalise:
        e = out[..., EXPRESSION_SLICE]
        s = e.sum(axis=-1, keepdims=True)
        uniform = np.full_like(e, 1.0 / e.shape[-1])
        out[..., EXPRESSION_SLICE] = np.where(s > 1e-6, e / np.maximum(s, 1e-12), uniform)
    return out


def binarize_aus(x: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Return a copy with AU occurrence columns thresholded to {0, 1}."""
    out = np.array(x, dtype=np.float32, copy=True)
    out[..., AU_SLICE] = (out[..., AU_SLICE] >= threshold).astype(np.float32)
    return out

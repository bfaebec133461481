"""The results contract: where predictions live, how they are read, what score files hold.

Formats (written by ``regnn generate`` / ``regnn baseline`` / ``regnn evaluate`` /
``regnn bench``; read by ``regnn evaluate``, ``regnn render``, ``regnn report``):

- **predictions**, per mirrored item of a split, in either layout:

  * regnn's: ``PRED/<split>/<speaker_path>.npy``, one float32 array ``(K, T, 25)``
    (:func:`prediction_path`, :func:`save_prediction`);
  * the official REGNN/REACT tools': ``<speaker_path>/result-<j>.pth`` under ``PRED/<split>/``
    or ``PRED/``, each a torch tensor holding one prediction ``(T, 25)`` (or ``(1, T, 25)``);

  :func:`read_prediction` reads one item in either layout, :func:`load_predictions` a whole
  split with every check (presence, shape, equal K, finite values);
- ``PRED/generation.json`` (:data:`GENERATION_FILE`): how the predictions were made;
- ``PRED/scores.json`` (:data:`SCORES_FILE`): the metric values, under ``"scores"``, with
  ``"higher_is_better"``, the dataset and the code version; reference systems under
  ``"references"``. :func:`read_scores` reads it tolerantly (regnn's or the official names).

Metric names, directions and digits: :mod:`regnn.metrics.catalogue` (re-exported here).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from regnn import schema
from regnn.errors import DataError
from regnn.metrics.catalogue import METRIC, METRICS, PAPER_ORDER, Metric, canonical
from regnn.utils.io import save_npy

__all__ = [
    "GENERATION_FILE", "METRIC", "METRICS", "PAPER_ORDER", "PAPER_REGNN", "PAPER_TABLE1",
    "PAPER_TABLE2", "SCORES_FILE", "Metric", "Scores", "canonical", "find_prediction",
    "load_prediction", "load_predictions", "prediction_path", "read_prediction", "read_scores",
    "save_prediction",
]

SCORES_FILE = "scores.json"
GENERATION_FILE = "generation.json"
RESULT_PTH = re.compile(r"result-(\d+)\.pth$")
MAX_LISTED = 5  # offenders named in one error message

# The paper's published numbers (REACT NoXI + RECOLA test set, K = 10), in PAPER_ORDER.
PAPER_TABLE1: dict[str, tuple[float, ...]] = {
    "huang-s": (14.91, 0.023, 0.045, 42.44, 0.092, 0.186, 0.181, 42.83),
    "huang-c": (11.99, 0.035, 0.058, 32.53, 0.054, 0.114, 0.102, 43.83),
    "unet": (8.31, 0.067, 0.141, 23.81, 0.015, 0.049, 0.0, 40.19),
    "l2l": (10.36, 0.082, 0.146, 27.33, 0.075, 0.064, 0.061, 39.22),
    "regnn": (7.62, 0.106, 0.153, 21.58, 0.077, 0.121, 0.048, 38.76),
}
PAPER_TABLE2: dict[str, tuple[float, ...]] = {
    "face-only": (8.33, 0.101, 0.129, 24.97, 0.013, 0.026, 0.052, 38.62),
    "audio-only": (8.81, 0.031, 0.062, 30.54, 0.023, 0.047, 0.081, 40.33),
    "no-afrdl": (11.6, 0.048, 0.070, 29.71, 0.075, 0.128, 0.076, 42.43),
    "iresnet-motor": (15.52, 0.051, 0.077, 35.20, 0.090, 0.193, 0.169, 42.12),
    "no-mefl": (8.97, 0.045, 0.096, 20.33, 0.031, 0.110, 0.062, 38.91),
    "regnn": PAPER_TABLE1["regnn"],
}
#: REGNN's published Table I row by metric key, for orientation
PAPER_REGNN: dict[str, float] = dict(zip(PAPER_ORDER, PAPER_TABLE1["regnn"]))


# -- predictions ---------------------------------------------------------------------------
def prediction_path(pred_dir: str | Path, split: str, speaker_path: str) -> Path:
    """``PRED/<split>/<speaker_path>.npy``: where regnn writes one item's predictions."""
    return Path(pred_dir) / split / f"{speaker_path}.npy"


def save_prediction(pred_dir: str | Path, split: str, speaker_path: str,
                    reactions: np.ndarray) -> Path:
    """Write one item's ``(K, T, 25)`` reactions as float32, atomically."""
    path = prediction_path(pred_dir, split, speaker_path)
    save_npy(path, np.asarray(reactions, dtype=np.float32))
    return path


def find_prediction(pred_dir: str | Path, split: str, speaker_path: str) -> Path | None:
    """The file or folder holding one item's predictions (either layout), or None."""
    pred_dir = Path(pred_dir)
    npy = prediction_path(pred_dir, split, speaker_path)
    if npy.is_file():
        return npy
    for base in (pred_dir / split, pred_dir):
        folder = base / speaker_path
        if folder.is_dir() and any(RESULT_PTH.search(p.name) for p in folder.iterdir()):
            return folder
    return None


def _read_pth_file(path: Path, frames: int | None) -> np.ndarray:
    """One official ``result-<j>.pth``: a floating-point tensor (T, 25) or (1, T, 25) with
    finite values (T = ``frames`` when given), read with ``weights_only=True``; anything else
    is a :class:`DataError` naming the file and what was expected."""
    import torch

    n = schema.NUM_ATTRIBUTES
    t = "T" if frames is None else str(frames)
    expected = f"a floating-point torch tensor ({t}, {n}) or (1, {t}, {n})"
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or unsafe file
        raise DataError(f"cannot read prediction ({type(exc).__name__}); expected {expected} "
                        "saved with torch.save", path=path, kind="bad-prediction") from None
    if not isinstance(value, torch.Tensor):
        raise DataError(f"holds a {type(value).__name__}, expected {expected}", path=path,
                        kind="bad-prediction")
    if not value.dtype.is_floating_point:
        raise DataError(f"holds a tensor of dtype {value.dtype}, expected {expected}",
                        path=path, kind="bad-prediction")
    shape = tuple(value.shape)
    if value.ndim == 3 and shape[0] == 1:
        value = value[0]
    if value.ndim != 2 or value.shape[1] != n or (frames is not None
                                                   and value.shape[0] != frames):
        raise DataError(f"holds a tensor of shape {shape}, expected {expected}", path=path,
                        kind="bad-shape")
    arr = value.detach().to(torch.float32).numpy()
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise DataError(f"holds {bad} non-finite value(s) (NaN or infinite), expected finite "
                        "values", path=path, kind="bad-prediction")
    return arr


def _read_pth_folder(folder: Path, frames: int | None = None) -> np.ndarray:
    files = sorted((int(m.group(1)), p) for p in folder.iterdir()
                   if (m := RESULT_PTH.search(p.name)))
    arrays = [_read_pth_file(path, frames) for _, path in files]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise DataError(f"result-<j>.pth files of different shapes {sorted(shapes)}",
                        path=folder, kind="bad-shape")
    return np.stack(arrays)


def read_prediction(path: str | Path, frames: int | None = None) -> np.ndarray:
    """One item's predictions from a ``.npy`` file (as stored) or a ``result-<j>.pth`` folder
    (each file checked: a float tensor of ``frames`` x 25, finite); a file that cannot be
    read is a :class:`DataError` naming it."""
    path = Path(path)
    if path.is_dir():
        return _read_pth_folder(path, frames)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read predictions: {exc}", path=path) from exc


def load_prediction(pred_dir: str | Path, split: str, speaker_path: str,
              frames: int | None = None) -> np.ndarray | None:
    """The ``(K, T, 25)`` float32 predictions for one item, or None if absent; a 2-D array is
    one reaction; ``frames`` cuts to (and requires at least) that many frames."""
    path = find_prediction(pred_dir, split, speaker_path)
    if path is None:
        return None
    arr = read_prediction(path)
    if arr.ndim == 2:
        arr = arr[None]
    n = schema.NUM_ATTRIBUTES
    if arr.ndim != 3 or arr.shape[-1] != n or arr.shape[0] < 1:
        raise DataError(f"predictions must have shape (K, T, {n}), got {arr.shape}", path=path)
    if frames is not None and arr.shape[1] < frames:
        raise DataError(f"predictions have {arr.shape[1]} frames, the clip has {frames}",
                        path=path)
    if not np.isfinite(arr).all():
        raise DataError("predictions contain NaN or infinite values", path=path)
    arr = arr.astype(np.float32, copy=False)
    return arr if frames is None else arr[:, :frames]


def load_predictions(pred_dir: str | Path, split: str, speaker_paths: list[str], *,
                     frames: int = schema.CLIP_FRAMES, k: int | None = None,
                     progress: bool = False) -> np.ndarray:
    """``(N, K, frames, 25)`` float32 predictions of the items, in item order; refuses (with
    the first few offenders listed) missing items, wrong shapes, unequal K (or K other than
    ``k``), non-finite values."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise DataError("predictions folder does not exist", path=pred_dir,
                        kind="missing-file")
    missing: list[str] = []
    bad: list[str] = []
    out: np.ndarray | None = None  # filled item by item: one copy of the predictions in memory
    k_of: dict[int, int] = {}
    paths = speaker_paths
    if progress:
        from tqdm import tqdm

        paths = tqdm(speaker_paths, desc="loading predictions", unit="item", leave=False)
    for idx, sp in enumerate(paths):
        where = find_prediction(pred_dir, split, sp)
        if where is None:
            missing.append(sp)
            continue
        try:
            arr = read_prediction(where, frames)
        except DataError as exc:
            bad.append(str(exc) if where.is_dir() else
                       f"{where}: unreadable ({exc.__cause__ or exc})")
            continue
        n = schema.NUM_ATTRIBUTES
        if arr.ndim != 3 or arr.shape[1:] != (frames, n) or arr.shape[0] < 1:
            bad.append(f"{where}: shape {tuple(arr.shape)}, expected (K, {frames}, {n})")
            continue
        if k is not None and arr.shape[0] != k:
            bad.append(f"{where}: K = {arr.shape[0]}, expected {k}")
            continue
        if not np.isfinite(arr).all():
            bad.append(f"{where}: non-finite values")
            continue
        k_of[idx] = arr.shape[0]
        if out is None:
            out = np.empty((len(speaker_paths),) + arr.shape, dtype=np.float32)
        if arr.shape[0] == out.shape[1]:
            out[idx] = arr
    if missing:
        listed = "; ".join(missing[:MAX_LISTED])
        raise DataError(
            f"{len(missing)} of {len(speaker_paths)} items have no predictions (looked for "
            f"{split}/<speaker_path>.npy and <speaker_path>/result-<j>.pth); first: {listed}",
            path=pred_dir, kind="missing-file")
    if not bad and len(set(k_of.values())) > 1:
        counts: dict[int, int] = {}
        for kk in k_of.values():
            counts[kk] = counts.get(kk, 0) + 1
        common = max(counts, key=lambda kk: counts[kk])
        bad = [f"{pred_dir / split / speaker_paths[i]}: K = {kk}, most items have K = {common}"
               for i, kk in k_of.items() if kk != common]
    if bad:
        raise DataError(f"{len(bad)} prediction(s) refused; first: " + "; ".join(bad[:MAX_LISTED]),
                        path=pred_dir, kind="bad-shape")
    if out is None:
        raise DataError(f"split {split!r} has no items to evaluate", path=pred_dir)
    return out


# -- scores --------------------------------------------------------------------------------
@dataclass
class Scores:
    """Metric values read from a scores.json (None where absent), and anything else numeric."""

    values: dict[str, float | None]
    extras: dict[str, float] = field(default_factory=dict)
    path: Path | None = None
    #: reference systems scored on the same split (``"references"`` in scores.json)
    references: dict[str, dict[str, float | None]] = field(default_factory=dict)


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, dict):
        for key in ("value", "score", "mean"):
            if key in v:
                return _number(v[key])
    return None


def _paper_key(name: str) -> str | None:
    key = canonical(name)
    return key if key in PAPER_ORDER else None


def read_scores(path: str | Path) -> Scores | None:
    """Parse ``scores.json`` tolerantly; None if the file does not exist. The paper's metrics
    are read from the top level or a ``"scores"``/``"metrics"`` object under regnn's or the
    official names (a value may be a number or an object holding it under ``value``/
    ``score``/``mean``); other numbers land in ``extras``."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read scores: {exc}", path=path) from exc
    if not isinstance(obj, dict):
        raise DataError("scores.json must hold a JSON object", path=path)
    values: dict[str, float | None] = {name: None for name in PAPER_ORDER}
    extras: dict[str, float] = {}
    sources = [obj] + [obj[k] for k in ("scores", "metrics") if isinstance(obj.get(k), dict)]
    sources = [src for src in sources if src is not obj.get("references")]
    for src in sources:
        for key, raw in src.items():
            canon = _paper_key(str(key))
            num = _number(raw)
            if num is None or (isinstance(num, float) and math.isnan(num) and canon is None):
                continue
            if canon is not None:
                if values.get(canon) is None:
                    values[canon] = num
            elif src is obj or key not in extras:
                extras[str(key)] = num
    references: dict[str, dict[str, float | None]] = {}
    refs = obj.get("references")
    if isinstance(refs, dict):
        for ref, vals in refs.items():
            if isinstance(vals, dict):
                references[str(ref)] = {
                    (_paper_key(str(k)) or str(k)): _number(v) for k, v in vals.items()}
    return Scores(values, extras, path, references)

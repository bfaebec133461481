"""Reading what the renderer and the report show: predictions, scores and training logs.

Formats (contracts of ``regnn generate`` / ``regnn evaluate`` / ``regnn train``):

- predictions: ``PRED/<split>/<speaker_path>.npy``, one float32 array ``(K, 750, 25)`` per
  mirrored item;
- scores: ``PRED/scores.json``; the metric values are read from the top level or from a
  ``"scores"`` object, under their regnn names (FRCorr, FRDist, FRDiv, FRVar, FRDvs, PCC,
  TLCC, FRRea) or the official REACT names (FRC, FRD, S-MSE, Synchrony); a value may be a
  number or an object holding it under ``value``/``score``/``mean``;
- training curves: Lightning CSV logs, ``RUN/**/metrics.csv``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from regnn.bench.scoring import METRICS as _BENCH_METRICS
from regnn.bench.tables import PAPER_TABLE1 as _PAPER_TABLE1
from regnn.errors import DataError
from regnn.schema import NUM_ATTRIBUTES

# (name, higher is better, what it measures) in the order of the paper's Table I.
METRICS: tuple[tuple[str, bool, str], ...] = (
    ("FRDist", False, "appropriateness: DTW distance to the closest appropriate real reaction"),
    ("FRCorr", True, "appropriateness: CCC with the best appropriate real reaction, summed over K"),
    ("PCC", True, "Pearson correlation with the most similar appropriate real reaction"),
    ("FRRea", False, "realism"),
    ("FRVar", True, "diversity over time within a reaction"),
    ("FRDvs", True, "diversity across speakers"),
    ("FRDiv", True, "diversity among the K reactions to one speaker"),
    ("TLCC", False, "synchrony: mean |lag| of the best speaker-reaction cross-correlation"),
)
# The paper's Table I (REACT NoXI+RECOLA test set, K = 10), for orientation only.
# REGNN's published Table I row (one copy: regnn.bench.tables), under the metrics' names.
PAPER_REGNN = {("TLCC" if m == "Synchrony" else m): v
               for m, v in zip(_BENCH_METRICS, _PAPER_TABLE1["regnn"])}
_ALIASES = {
    "frcorr": "FRCorr", "frc": "FRCorr", "frdist": "FRDist", "frd": "FRDist",
    "frdiv": "FRDiv", "s-mse": "FRDiv", "s_mse": "FRDiv", "smse": "FRDiv",
    "frvar": "FRVar", "frdvs": "FRDvs", "pcc": "PCC", "tlcc": "TLCC", "synchrony": "TLCC",
    "frrea": "FRRea", "realism": "FRRea",
}


def prediction_path(pred_dir: str | Path, split: str, speaker_path: str) -> Path:
    return Path(pred_dir) / split / f"{speaker_path}.npy"


def load_prediction(pred_dir: str | Path, split: str, speaker_path: str,
                    frames: int | None = None) -> np.ndarray | None:
    """The ``(K, T, 25)`` predictions for one item (``.npy`` or the official ``result-<j>.pth``
    folder, found as :func:`regnn.evaluate.find_prediction` finds them), or None if absent."""
    from regnn.evaluate import _load_pth_folder, find_prediction

    path = find_prediction(Path(pred_dir), split, speaker_path)
    if path is None:
        return None
    if path.is_dir():  # the official tools' <speaker_path>/result-<j>.pth layout
        arr = _load_pth_folder(path)
    else:
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read predictions: {exc}", path=path) from exc
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[-1] != NUM_ATTRIBUTES or arr.shape[0] < 1:
        raise DataError(f"predictions must have shape (K, T, {NUM_ATTRIBUTES}), got {arr.shape}",
                        path=path)
    if frames is not None and arr.shape[1] < frames:
        raise DataError(f"predictions have {arr.shape[1]} frames, the clip has {frames}",
                        path=path)
    if not np.isfinite(arr).all():
        raise DataError("predictions contain NaN or infinite values", path=path)
    arr = arr.astype(np.float32, copy=False)
    return arr if frames is None else arr[:, :frames]


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


def read_scores(path: str | Path) -> Scores | None:
    """Parse ``scores.json`` tolerantly; None if the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read scores: {exc}", path=path) from exc
    if not isinstance(obj, dict):
        raise DataError("scores.json must hold a JSON object", path=path)
    values: dict[str, float | None] = {name: None for name, _, _ in METRICS}
    extras: dict[str, float] = {}
    sources = [obj] + [obj[k] for k in ("scores", "metrics") if isinstance(obj.get(k), dict)]
    sources = [src for src in sources if src is not obj.get("references")]
    for src in sources:
        for key, raw in src.items():
            canon = _ALIASES.get(str(key).lower())
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
                    _ALIASES.get(str(k).lower(), str(k)): _number(v) for k, v in vals.items()}
    return Scores(values, extras, path, references)


def find_training_logs(run_dir: str | Path | None) -> list[Path]:
    """Lightning CSV logs under ``run_dir`` (``**/metrics.csv``), in a stable order."""
    if run_dir is None or not Path(run_dir).is_dir():
        return []
    return sorted(Path(run_dir).glob("**/metrics.csv"))

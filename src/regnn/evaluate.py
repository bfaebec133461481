"""Scoring a folder of predictions with the REACT metrics (``regnn evaluate``).

Predictions are read in either layout, per mirrored item of the split:

* regnn's: ``PRED/<split>/<speaker_path>.npy``, one float32 array (K, T, 25);
* the official REGNN/REACT tools': ``<speaker_path>/result-<j>.pth`` under ``PRED/<split>/``
  or ``PRED/``, each a torch tensor holding one prediction (T, 25) (or (1, T, 25)).

Every item must be present with the same K and shape (K, 750, 25) and finite values;
otherwise :class:`~regnn.errors.DataError` lists the first offenders. The scores, the item
count, K, the dataset, the code version and the timings are written to ``PRED/scores.json``
(or ``out``), atomically.

With :class:`~regnn.metrics.fid.FIDSettings` (``regnn evaluate --fid-weights PATH``) the image
FID of the REACT protocol is added as ``scores["FRRea_FID"]``, with what it was computed from
under ``"fid"`` (:mod:`regnn.metrics.fid`); without it nothing changes.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regnn import __version__, schema
from regnn.errors import DataError
from regnn.metrics import FID_KEY, HIGHER_IS_BETTER, METRIC_KEYS, better_word, compute_all
from regnn.utils.io import write_json

if TYPE_CHECKING:
    from regnn.metrics.fid import FIDSettings, InceptionFeatures, LoadedInception

_RESULT = re.compile(r"result-(\d+)\.pth$")
MAX_LISTED = 5


def _load_pth_file(path: Path, frames: int) -> np.ndarray:
    """One official ``result-<j>.pth``: a floating-point tensor (T, 25) or (1, T, 25) with
    finite values, read with ``weights_only=True``; anything else is a :class:`DataError`
    naming the file and what was expected."""
    import torch

    expected = (f"a floating-point torch tensor ({frames}, {schema.NUM_ATTRIBUTES}) or "
                f"(1, {frames}, {schema.NUM_ATTRIBUTES})")
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
    if tuple(value.shape) != (frames, schema.NUM_ATTRIBUTES):
        raise DataError(f"holds a tensor of shape {shape}, expected {expected}", path=path,
                        kind="bad-shape")
    arr = value.detach().to(torch.float32).numpy()
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise DataError(f"holds {bad} non-finite value(s) (NaN or infinite), expected finite "
                        "values", path=path, kind="bad-prediction")
    return arr


def _load_pth_folder(folder: Path, frames: int = schema.CLIP_FRAMES) -> np.ndarray:
    files = sorted((int(m.group(1)), p) for p in folder.iterdir()
                   if (m := _RESULT.search(p.name)))
    return np.stack([_load_pth_file(path, frames) for _, path in files])


def find_prediction(pred_dir: Path, split: str, speaker_path: str) -> Path | None:
    """The file or folder holding one item's predictions, or None."""
    npy = pred_dir / split / f"{speaker_path}.npy"
    if npy.is_file():
        return npy
    for base in (pred_dir / split, pred_dir):
        folder = base / speaker_path
        if folder.is_dir() and any(_RESULT.search(p.name) for p in folder.iterdir()):
            return folder
    return None


def load_predictions(pred_dir: str | Path, split: str, speaker_paths: list[str], *,
                     frames: int = schema.CLIP_FRAMES, progress: bool = False) -> np.ndarray:
    """(N, K, frames, 25) float32 predictions of the items, in item order; refuses (with
    the first few offenders listed) missing items, wrong shapes, unequal K, non-finite
    values."""
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
        if where.suffix == ".npy":
            try:
                arr = np.load(where, allow_pickle=False)
            except (OSError, ValueError) as exc:
                bad.append(f"{where}: unreadable ({exc})")
                continue
        else:
            try:
                arr = _load_pth_folder(where, frames)
            except DataError as exc:
                bad.append(str(exc))
                continue
        if arr.ndim != 3 or arr.shape[1:] != (frames, schema.NUM_ATTRIBUTES) or arr.shape[0] < 1:
            bad.append(f"{where}: shape {tuple(arr.shape)}, expected (K, {frames}, "
                       f"{schema.NUM_ATTRIBUTES})")
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
        for k in k_of.values():
            counts[k] = counts.get(k, 0) + 1
        common = max(counts, key=lambda k: counts[k])
        bad = [f"{pred_dir / split / speaker_paths[i]}: K = {k}, most items have K = {common}"
               for i, k in k_of.items() if k != common]
    if bad:
        raise DataError(f"{len(bad)} prediction(s) refused; first: " + "; ".join(bad[:MAX_LISTED]),
                        path=pred_dir, kind="bad-shape")
    if out is None:
        raise DataError(f"split {split!r} has no items to evaluate", path=pred_dir)
    return out


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def _dataset_info(root: Path, split: str, n_items: int) -> dict[str, Any]:
    info: dict[str, Any] = {"root": str(root.resolve()), "split": split, "items": n_items}
    csv = root / f"{split}.csv"
    if csv.is_file():
        info["split_csv_sha256"] = hashlib.sha256(csv.read_bytes()).hexdigest()
    nb = root / f"neighbour_emotion_{split}.npy"
    if nb.is_file():
        info["neighbours_sha256"] = hashlib.sha256(nb.read_bytes()).hexdigest()
    return info


@contextmanager
def _torch_threads(workers: int | None) -> Iterator[None]:
    import torch

    previous = torch.get_num_threads()
    if workers is not None:
        torch.set_num_threads(workers)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _prepare_fid(fid: FIDSettings) -> tuple[InceptionFeatures, LoadedInception]:
    """Check the FID options, the image folders and the weight file before any other work."""
    from regnn.metrics.fid import image_files

    fid.check()
    if fid.real_dir is not None and fid.fake_dir is not None:
        image_files(fid.real_dir)
        image_files(fid.fake_dir)
    return fid.model()


def _run_fid(fid: FIDSettings, model: InceptionFeatures, loaded: LoadedInception,
             pred: np.ndarray | None, listeners: np.ndarray | None, workers: int | None,
             progress: bool) -> tuple[float, dict[str, Any]]:
    from regnn.metrics.fid import fid_info, fid_of_folders, fid_of_reactions

    with _torch_threads(workers):
        if fid.real_dir is not None and fid.fake_dir is not None:
            res = fid_of_folders(fid.real_dir, fid.fake_dir, model=model,
                                 batch_size=fid.batch_size, device=fid.device,
                                 progress=progress)
            return res["FID"], fid_info(fid, loaded, "folders", res)
        assert pred is not None and listeners is not None
        res = fid_of_reactions(pred, listeners, fid, model=model, progress=progress)
        return res["FID"], fid_info(fid, loaded, "rendered", res)


def evaluate_predictions(
    root: str | Path, split: str, pred_dir: str | Path, *, out: str | Path | None = None,
    workers: int | None = None, tlcc_first_only: bool = False, progress: bool = True,
    write: bool = True, fid: FIDSettings | None = None,
) -> dict[str, Any]:
    """Score the predictions in ``pred_dir`` against ``split`` of the dataset at ``root``.

    Returns (and, with ``write``, saves to ``out`` or ``PRED/scores.json``) a dict with
    ``scores`` (the eight metrics), ``items``, ``K``, ``split``, ``dataset``, ``commit``,
    ``regnn_version``, ``tlcc_first_only`` and ``timing`` (seconds). With ``fid`` the image
    FID is added as ``scores["FRRea_FID"]`` and its provenance as ``"fid"``; the weight file
    is loaded (or refused) before anything else is read.
    """
    from regnn.data.react import ReactSplit

    t0 = time.perf_counter()
    fid_model = _prepare_fid(fid) if fid is not None else None
    root = Path(root)
    ds = ReactSplit(root, split, audio=False)
    speaker_paths = [it.speaker_path for it in ds.items]
    pred = load_predictions(pred_dir, split, speaker_paths, progress=progress)
    speakers = ds.speakers()
    listeners = ds.listeners()
    neighbours = ds.neighbours
    t_load = time.perf_counter() - t0
    timings: dict[str, float] = {}
    t1 = time.perf_counter()
    scores = compute_all(pred, speakers, listeners, neighbours, tlcc_first_only=tlcc_first_only,
                         workers=workers, progress=progress, timings=timings)
    t_metrics = time.perf_counter() - t1
    fid_result: dict[str, Any] | None = None
    if fid is not None and fid_model is not None:
        t2 = time.perf_counter()
        scores[FID_KEY], fid_result = _run_fid(fid, *fid_model, pred, listeners, workers,
                                               progress)
        timings[FID_KEY] = time.perf_counter() - t2
    result: dict[str, Any] = {
        "scores": scores,
        "higher_is_better": {k: HIGHER_IS_BETTER[k] for k in scores},
        "items": int(pred.shape[0]),
        "K": int(pred.shape[1]),
        "frames": int(pred.shape[2]),
        "split": split,
        "predictions": str(Path(pred_dir).resolve()),
        "dataset": _dataset_info(root, split, len(ds)),
        "commit": _git_commit(),
        "regnn_version": __version__,
        "tlcc_first_only": tlcc_first_only,
        "timing": {"load_s": t_load, "metrics_s": t_metrics,
                   **{f"{k}_s": v for k, v in timings.items()},
                   "total_s": time.perf_counter() - t0},
    }
    if fid_result is not None:
        result["fid"] = fid_result
    if write:
        target = Path(out) if out is not None else Path(pred_dir) / "scores.json"
        write_json(target, result)
        result["written_to"] = str(target)
    return result


def evaluate_fid_folders(fid: FIDSettings, *, out: str | Path | None = None,
                         workers: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Only the image FID between ``fid.real_dir`` and ``fid.fake_dir`` (``regnn evaluate
    --fid-weights W --fid-real R --fid-fake F`` without ``--data``/``--pred``); saved to
    ``out`` when given."""
    from regnn.errors import ConfigError

    if fid.real_dir is None or fid.fake_dir is None:
        raise ConfigError("without --data and --pred, give --fid-weights, --fid-real and "
                          "--fid-fake (FID between two image folders)")
    t0 = time.perf_counter()
    model, loaded = _prepare_fid(fid)
    value, info = _run_fid(fid, model, loaded, None, None, workers, progress)
    result: dict[str, Any] = {
        "scores": {FID_KEY: value},
        "higher_is_better": {FID_KEY: HIGHER_IS_BETTER[FID_KEY]},
        "fid": info,
        "commit": _git_commit(),
        "regnn_version": __version__,
        "timing": {f"{FID_KEY}_s": time.perf_counter() - t0,
                   "total_s": time.perf_counter() - t0},
    }
    if out is not None:
        write_json(Path(out), result)
        result["written_to"] = str(out)
    return result


def format_table(result: dict[str, Any]) -> str:
    """The scores as a small text table (metric, value, direction): the REACT metrics present,
    then the image FID when it was computed."""
    width = max(8, len(FID_KEY)) if FID_KEY in result["scores"] else 8
    lines = [f"{'metric':{width}s} {'value':>12s}  better"]
    for key in (*METRIC_KEYS, FID_KEY):
        if key not in result["scores"]:
            continue
        value = result["scores"][key]
        lines.append(f"{key:{width}s} {value:12.5f}  {better_word(key)}")
    return "\n".join(lines)


def evaluate_with_references(root: str | Path, split: str, pred_dir: str | Path, *, k: int = 10,
                             seed: int = 0, write: bool = True) -> dict[str, dict[str, float]]:
    """Scores of the predictions in ``pred_dir`` and of the references.

    Returns ``{"REGNN": scores, "gt": ..., "random": ..., "mime": ..., "meanseq": ...,
    "meanfr": ..., "nn": ...}`` (references with ``k`` reactions; means and the retrieval
    reference from the train split); with ``write``, ``PRED/scores.json`` holds the
    predictions' result plus ``references``.
    """
    from regnn.baselines import REFERENCES, reference_predictions
    from regnn.data.react import ReactSplit

    result = evaluate_predictions(root, split, pred_dir, progress=False, write=False)
    rows = {"REGNN": result["scores"]}
    ds = ReactSplit(root, split, audio=False)
    train = ReactSplit(root, "train", audio=False)
    speakers, listeners, nb = ds.speakers(), ds.listeners(), ds.neighbours
    for name in REFERENCES:
        refs = reference_predictions(name, ds, train, k=k, seed=seed)
        rows[name] = compute_all(refs, speakers, listeners, nb)
    if write:
        result["references"] = {name: s for name, s in rows.items() if name != "REGNN"}
        write_json(Path(pred_dir) / "scores.json", result)
    return rows


"""Scoring a folder of predictions with the REACT metrics (``regnn evaluate``).

Predictions are read in either layout of :mod:`regnn.results` (regnn's ``.npy`` or the
official tools' ``result-<j>.pth``) by :func:`regnn.results.load_predictions`: every item
must be present with the same K and shape (K, 750, 25) and finite values; otherwise
:class:`~regnn.errors.DataError` lists the first offenders. The scores, the item
count, K, the dataset, the code version and the timings are written to ``PRED/scores.json``
(or ``out``), atomically.

With :class:`~regnn.fid.FIDSettings` (``regnn evaluate --fid-weights PATH``) the image
FID of the REACT protocol is added as ``scores["FRRea_FID"]``, with what it was computed from
under ``"fid"`` (:mod:`regnn.fid`); without it nothing changes.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regnn import __version__
from regnn.metrics import FID_KEY, HIGHER_IS_BETTER, METRIC_KEYS, better_word, compute_all
from regnn.results import SCORES_FILE, load_predictions
from regnn.utils.io import write_json

if TYPE_CHECKING:
    from regnn.fid import FIDSettings, InceptionFeatures, LoadedInception


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
    from regnn.fid import image_files

    fid.check()
    if fid.real_dir is not None and fid.fake_dir is not None:
        image_files(fid.real_dir)
        image_files(fid.fake_dir)
    return fid.model()


def _run_fid(fid: FIDSettings, model: InceptionFeatures, loaded: LoadedInception,
             pred: np.ndarray | None, listeners: np.ndarray | None, workers: int | None,
             progress: bool) -> tuple[float, dict[str, Any]]:
    from regnn.fid import fid_info, fid_of_folders, fid_of_reactions

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
        target = Path(out) if out is not None else Path(pred_dir) / SCORES_FILE
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
    from regnn.data.react import ReactSplit
    from regnn.references import REFERENCES, reference_predictions

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
        write_json(Path(pred_dir) / SCORES_FILE, result)
    return rows


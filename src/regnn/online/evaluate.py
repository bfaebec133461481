"""Online evaluation: the REACT metrics of an online run next to an offline one.

``evaluate_online(online_run, data, split="test", offline_run=None)`` generates K reactions for
every mirrored item of the split **through the streaming path** (``REGNNStream``: frames in
order, chunk by chunk, each item with the generator of :func:`regnn.generate.item_generator`
as ``regnn generate`` uses), scores them with :func:`regnn.metrics.compute_all`, and, when an
offline run is given, generates and scores it the same way (whole clips, ``generate_clips``)
for a side-by-side table. It also reports how smooth the chunk boundaries are: the mean
absolute frame-to-frame step into a chunk's first frame over the mean step inside chunks
(1.0 = boundaries indistinguishable from the interior).

Predictions are written in the ``PRED/<split>/<speaker_path>.npy`` layout (so ``regnn
evaluate`` can score them too) and the table to ``OUT/online_eval.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from regnn.errors import ConfigError
from regnn.results import save_prediction
from regnn.utils.io import write_json


def boundary_step_ratio(pred: np.ndarray, hop: int) -> float:
    """Mean ``|x[t] - x[t-1]|`` at chunk starts ``t = c·hop`` over the mean at other ``t``.

    ``pred (..., T, 25)``; steps are averaged over everything but time.
    """
    step = np.abs(np.diff(pred, axis=-2))
    step = step.reshape(-1, step.shape[-2], step.shape[-1]).mean(axis=(0, 2))  # (T-1,)
    at = np.arange(1, step.shape[0] + 1) % hop == 0
    return float(step[at].mean() / step[~at].mean())


def _generate(module: Any, ds: Any, k: int, sigma: float, seed: int, progress: bool,
              desc: str) -> tuple[np.ndarray, float]:
    from regnn.generate import item_generator

    cfg = module.config.model
    preds = []
    t0 = time.perf_counter()
    for i in tqdm(range(len(ds)), desc=desc, unit="item", disable=not progress):
        face = torch.from_numpy(np.array(ds.speaker(i), dtype=np.float32))[None]
        audio = torch.from_numpy(ds.audio(i))[None] if cfg.use_audio else None
        with torch.no_grad():
            pred, _ = module.generate_clips(face, audio, k, sigma, item_generator(seed, i))
        from regnn.schema import clip_to_ranges

        preds.append(clip_to_ranges(np.asarray(pred[0], dtype=np.float32)))
    return np.stack(preds), time.perf_counter() - t0


def evaluate_online(online_run: str | Path, data: str | Path, split: str = "test",
                    offline_run: str | Path | None = None, out: str | Path | None = None,
                    k: int = 10, sigma: float | None = None, seed: int = 0,
                    progress: bool = True) -> dict[str, Any]:
    """Score an online run (and optionally an offline one) on ``split``; see module doc."""
    from regnn.data.react import ReactSplit
    from regnn.metrics import compute_all
    from regnn.models.runs import load_module
    from regnn.online.model import OnlineREGNNModule

    online = load_module(online_run)
    if not isinstance(online, OnlineREGNNModule):
        raise ConfigError(f"{online_run} is not an online run (regnn train --online)")
    sig = online.config.generate.sigma if sigma is None else sigma
    ds = ReactSplit(data, split, audio=online.config.model.use_audio)
    speakers, listeners, neighbours = ds.speakers(), ds.listeners(), ds.neighbours
    rows: dict[str, dict[str, Any]] = {}

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # chunks are small: one thread is fastest
    try:
        pred, wall = _generate(online, ds, k, sig, seed, progress, "online (streamed)")
    finally:
        torch.set_num_threads(torch_threads)
    hop = online.online.hop
    raw = pred
    rows["online"] = {**compute_all(pred, speakers, listeners, neighbours),
                      "boundary_step_ratio": boundary_step_ratio(raw, hop),
                      "generate_s": round(wall, 2),
                      "window": online.online.graph, "hop": hop, "lag_frames": online.online.lag}
    if out is not None:
        for i, item in enumerate(ds.items):
            save_prediction(Path(out) / "online", split, item.speaker_path, pred[i])
    if offline_run is not None:
        offline = load_module(offline_run)
        osig = offline.config.generate.sigma if sigma is None else sigma
        ds_off = ReactSplit(data, split, audio=offline.config.model.use_audio)
        opred, owall = _generate(offline, ds_off, k, osig, seed, progress, "offline")
        rows["offline"] = {**compute_all(opred, speakers, listeners, neighbours),
                           "generate_s": round(owall, 2),
                           "window": offline.config.model.window,
                           "stride": offline.config.model.stride}
        if out is not None:
            for i, item in enumerate(ds.items):
                save_prediction(Path(out) / "offline", split, item.speaker_path, opred[i])
    result = {"data": str(data), "split": split, "items": len(ds), "k": k, "seed": seed,
              "online_run": str(online_run),
              "offline_run": None if offline_run is None else str(offline_run), "scores": rows}
    if "offline" in rows:
        result["online_minus_offline"] = {
            key: rows["online"][key] - rows["offline"][key]
            for key in rows["online"] if key in rows["offline"]
            and isinstance(rows["online"][key], float)}
    if out is not None:
        write_json(Path(out) / "online_eval.json", result)
    return result


def format_table(result: dict[str, Any]) -> str:
    from regnn.metrics import METRIC_KEYS

    rows = result["scores"]
    keys = list(METRIC_KEYS)
    lines = [f"{result['split']} split, {result['items']} items, K={result['k']}, "
             f"seed {result['seed']}",
             f"{'system':<10}" + "".join(f"{k:>11}" for k in keys)]
    for name, r in rows.items():
        lines.append(f"{name:<10}" + "".join(f"{r[k]:>11.4f}" for k in keys))
    if "online" in rows:
        o = rows["online"]
        lines.append(f"online: window {o['window']} frames, hop {o['hop']}, listener lag "
                     f"{o['lag_frames']} frames; chunk-boundary step / interior step = "
                     f"{o['boundary_step_ratio']:.3f}; generation {o['generate_s']} s")
    return "\n".join(lines)

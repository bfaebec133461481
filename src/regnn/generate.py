"""Generating K reactions per speaker item of a split (``regnn generate``).

Writes ``OUT/<split>/<speaker_path>.npy`` (float32, ``(K, 750, 25)``, clipped to the attribute
ranges, expression probabilities renormalised, AUs optionally binarised) for every mirrored
item and ``OUT/generation.json`` with the wall time, reactions per second and the worst
reconstruction error / iteration count the motor inverse reached during the run.

Each item's noise comes from its own generator seeded by ``(seed, item index)``, so the
output of an item does not depend on which other items are generated with it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from regnn import mkl
from regnn.errors import ConfigError
from regnn.models.invertible import InverseInfo
from regnn.results import GENERATION_FILE, save_prediction
from regnn.schema import binarize_aus, clip_to_ranges
from regnn.utils.device import resolve_device
from regnn.utils.io import write_json


def item_generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(index))


def postprocess(pred: np.ndarray, binarize: bool = False) -> np.ndarray:
    """Clip to the attribute ranges (expressions renormalised); optionally binarise AUs."""
    out = clip_to_ranges(pred)
    return binarize_aus(out) if binarize else out


def generate_predictions(run_dir: str | Path, root: str | Path, split: str,
                         out_dir: str | Path, samples: int | None = None,
                         sigma: float | None = None,
                         seed: int = 0, binarize: bool | None = None, checkpoint: str = "best",
                         progress: bool = True, limit: int | None = None,
                         threads: int = 0, noise: str | None = None,
                         noise_scale: float | None = None, device: str = "cpu"
                         ) -> dict[str, Any]:
    """Generate ``samples`` reactions per item of ``split``; returns generation.json's dict.
    ``device`` (cpu, cuda, cuda:N, auto) is where the model runs; the noise is drawn on the CPU,
    so a seed gives the same reactions on any device (to float rounding).

    ``samples``, ``sigma``, ``noise``, ``noise_scale`` and ``binarize`` replace the run's
    ``generate`` settings (``generate.samples``, ...); None keeps them."""
    from regnn.data.react import ReactSplit
    from regnn.models.runs import load_module

    if samples is not None and samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    if threads > 0:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    module = load_module(run_dir, checkpoint, map_location=str(dev))
    gcfg = module.sampling(samples=samples, sigma=sigma, noise=noise, noise_scale=noise_scale,
                           binarize_aus=binarize)
    module.config.generate = gcfg  # what this generation used, for the module's own calls
    samples, binarize = gcfg.samples, gcfg.binarize_aus
    cfg = module.config.model
    ds = ReactSplit(root, split, audio=cfg.use_audio)
    out = Path(out_dir)
    n = len(ds) if limit is None else min(limit, len(ds))
    info = InverseInfo()
    model_s = 0.0
    t0 = time.perf_counter()
    for i in tqdm(range(n), desc=f"generate {split}", unit="item", disable=not progress):
        face = torch.from_numpy(np.array(ds.speaker(i), dtype=np.float32))[None].to(dev)
        audio = torch.from_numpy(ds.audio(i))[None].to(dev) if cfg.use_audio else None
        t1 = time.perf_counter()
        with torch.no_grad():
            pred, inf = module.generate_clips(face, audio, samples,
                                              generator=item_generator(seed, i))
        model_s += time.perf_counter() - t1
        info = info.merge(inf)
        arr = postprocess(pred[0].float().cpu().numpy(), binarize)
        save_prediction(out, split, ds.items[i].speaker_path, arr)
    wall = time.perf_counter() - t0
    summary = {
        "run": str(run_dir), "data": str(root), "split": split, "items": n,
        "samples": samples, "noise": gcfg.noise, "sigma": gcfg.sigma,
        "noise_scale": gcfg.noise_scale,
        "seed": seed, "binarize_aus": binarize, "checkpoint": checkpoint,
        "device": str(dev), "torch_threads": torch.get_num_threads(), "mkl": mkl.status(),
        "wall_s": round(wall, 3), "model_s": round(model_s, 3),
        "reactions_per_s": round(n * samples / wall, 2) if wall > 0 else None,
        "seconds_per_item_model": round(model_s / max(n, 1), 4),
        "motor_inverse": {
            "max_iterations": info.max_iterations,
            "max_residual": info.max_residual,
            "max_certified_error": max(info.certified, default=0.0),
            # False: max_residual is the bound c‖x_k - x_{k-1}‖ from the last step, not measured
            "residual_measured": info.measured,
            "converged": info.converged,
        },
    }
    write_json(out / GENERATION_FILE, summary)
    return summary

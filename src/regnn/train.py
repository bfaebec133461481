"""Training a reaction generator with PyTorch Lightning (``regnn train``).

``train(config, data_root, out_dir, seed=0)`` trains the model named by ``config.model.name``
on the train split, validates on a fixed subset of the val split every
``config.train.val_every`` epochs (FRCorr / FRDist of generated reactions), and writes::

    RUN/config.yaml             the fully resolved config (+ data root, seed, model name)
    RUN/checkpoints/best.ckpt   best val FRCorr (last epoch when validation is off)
    RUN/checkpoints/last.ckpt   for --resume
    RUN/logs/metrics.csv        CSV log;  RUN/tb/ TensorBoard log
    RUN/train.json              summary: time per epoch, losses, val scores, motor checks

Checkpoints are written atomically (temporary file + rename). On CPU the same seed gives the
same checkpoint: everything is seeded, deterministic algorithms are on, sampling of the
appropriate reactions depends only on (seed, epoch, sample index).

Data parallelism (``train.devices = N``, ``train.strategy = "ddp"``; CPU cores or GPUs) runs N
processes under Lightning's DDP. ``train.batch_size`` stays the global batch: each process
takes ``batch_size / N`` windows of every optimiser step and the gradients are averaged, which
is the gradient of the batch mean (the losses are means over windows). Every process scores
the whole validation subset (predictions are gathered), and only rank 0 writes
``train.json``. On the 2-core development machine ``--devices 2 --strategy ddp`` (one thread
per process) was about as fast as one process with two threads (``benchmarks/bench_model.py``
prints both); it pays off where one process cannot keep the cores busy. Lightning's
``ddp`` launcher starts the other processes by re-running the command, so call it from the
``regnn train`` command line or a script, not from a notebook cell.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from regnn import mkl
from regnn.config import RunConfig
from regnn.errors import ConfigError, DataError
from regnn.models.runs import (  # noqa: F401  (load_module, load_run_config: public here too)
    checkpoint_config,
    load_module,
    load_run_config,
    read_checkpoint,
)
from regnn.utils.io import atomic_path, write_json, write_text


def _lightning() -> Any:
    import lightning as L

    return L


def make_checkpoint_io() -> Any:
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        """Lightning checkpoints written to a temporary file and renamed into place."""

        def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                            storage_options: Any = None) -> None:
            with atomic_path(Path(path)) as tmp:
                torch.save(checkpoint, tmp)

    return AtomicCheckpointIO()


def run_config_dict(config: RunConfig, data_root: str | Path, seed: int) -> dict[str, Any]:
    d = config.to_dict()
    d["data"] = {"root": str(Path(data_root).resolve()), "seed": seed}
    return d


def _datasets(config: RunConfig, data_root: Path, seed: int) -> tuple[Any, Any, Any]:
    from regnn.data.react import ReactSplit
    from regnn.data.training import AppropriateWindows, ClipItems

    m, t = config.model, config.train
    train_split = ReactSplit(data_root, "train", audio=m.use_audio)
    train_ds = AppropriateWindows.from_split(train_split, m.span, m.stride, t.appropriate, seed,
                                             use_audio=m.use_audio,
                                             clip_windows=t.clip_windows)
    _check_dims(config, train_ds)
    val = None
    if t.val_items > 0:
        try:
            val_split = ReactSplit(data_root, "val", audio=m.use_audio)
        except DataError:
            val_split = None
        if val_split is not None and len(val_split) > 0:
            n = len(val_split)
            pick = np.unique(np.linspace(0, n - 1, min(t.val_items, n)).round().astype(int))
            speakers = np.stack([val_split.speaker(i) for i in pick])
            audio = np.stack([val_split.audio(i) for i in pick]) if m.use_audio else None
            val = (ClipItems(speakers, audio), val_split.listeners(), val_split.neighbours[pick])
    return train_ds, val, train_split


def _check_dims(config: RunConfig, ds: Any) -> None:
    m = config.model
    if m.use_face and ds.speakers.shape[-1] != m.face_dim:
        raise ConfigError(f"model.face_dim is {m.face_dim} but the data has "
                          f"{ds.speakers.shape[-1]} face features per frame")
    if m.use_audio and ds.audio is not None and ds.audio.shape[-1] != m.audio_dim:
        raise ConfigError(f"model.audio_dim is {m.audio_dim} but the data has "
                          f"{ds.audio.shape[-1]} audio features per frame")


def train(config: RunConfig, data_root: str | Path, out_dir: str | Path, *, seed: int = 0,
          resume: bool = False, progress: bool = True, max_steps: int = -1) -> dict[str, Any]:
    """Train ``config.model.name`` on ``data_root`` into ``out_dir``; returns the summary
    (``{}`` in the DDP processes other than rank 0, which write nothing)."""
    L = _lightning()
    from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from torch.utils.data import DataLoader

    from regnn.data.training import collate_prebatched
    from regnn.models.registry import build_model

    config.validate()
    data_root, out = Path(data_root), Path(out_dir)
    t = config.train
    last = out / "checkpoints" / "last.ckpt"
    if resume and not last.is_file():
        raise ConfigError(f"--resume: no checkpoint to resume from at {last}")
    if not resume and last.is_file():
        raise ConfigError(f"{out} already holds a training run; use --resume to continue it or "
                          "choose another --out")
    if resume:  # before anything is written: the checkpoint must be readable and fit
        check_resume(config, last)
    if t.threads > 0:
        torch.set_num_threads(t.threads)
        # DDP processes would otherwise take cpu_count / processes threads each (Lightning)
        os.environ["OMP_NUM_THREADS"] = str(t.threads)
    L.seed_everything(seed, workers=True, verbose=False)
    if t.deterministic and t.accelerator == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)

    train_ds, val, _ = _datasets(config, data_root, seed)
    cfg_dict = run_config_dict(config, data_root, seed)

    model = build_model({k: v for k, v in cfg_dict.items() if k != "data"})
    has_val = val is not None
    monitor = "val/FRCorr" if has_val else None
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor=monitor,
                           mode="max", save_last=True, save_top_k=1, enable_version_counter=False)
    timer = _EpochTimer()
    callbacks = [ckpt, timer]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    log_version = ""  # RUN/logs/metrics.csv; a resumed run logs beside it, never over it
    if resume:
        k = 1
        while (out / "logs" / f"resume{k}").exists():
            k += 1
        log_version = f"resume{k}"
    trainer = L.Trainer(
        max_epochs=t.epochs, max_steps=max_steps, accelerator=t.accelerator, devices=t.devices,
        strategy=t.strategy, precision=t.precision,
        deterministic=t.deterministic if t.accelerator == "cpu" else False,
        logger=[CSVLogger(out, name="logs", version=log_version),
                TensorBoardLogger(out, name="tb", version=log_version)],
        callbacks=callbacks, enable_progress_bar=progress, enable_model_summary=False,
        check_val_every_n_epoch=max(1, t.val_every), num_sanity_val_steps=0,
        gradient_clip_val=t.grad_clip or None, log_every_n_steps=1,
        plugins=[make_checkpoint_io()], limit_val_batches=1.0 if has_val else 0,
    )
    # train.batch_size is the global batch (windows per optimiser step, the paper's 128);
    # under DDP every process takes its share, so --devices does not change the optimisation
    per_process = per_process_batch(t.batch_size, trainer.world_size)
    # the loader's batch counts samples: windows, or chunks of train.clip_windows windows
    per_sample = getattr(train_ds, "chunk", 1)
    if per_process % per_sample:
        raise ConfigError(f"train.batch_size {t.batch_size} ({per_process} windows per process) "
                          f"is not a multiple of train.clip_windows {per_sample}")
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", yaml.safe_dump(cfg_dict, sort_keys=False))

    # the order of an epoch depends on (seed, epoch) only, so a resumed run sees the same
    # batches as an uninterrupted one (Lightning calls set_epoch on the sampler)
    train_loader = DataLoader(train_ds, batch_size=per_process // per_sample,
                              sampler=EpochShuffle(len(train_ds), seed),
                              num_workers=t.num_workers, collate_fn=collate_prebatched,
                              persistent_workers=t.num_workers > 0)
    val_loader = None
    if val is not None:
        items, listeners, neighbours = val
        model.set_validation_targets(listeners, neighbours)
        val_loader = DataLoader(items, batch_size=max(1, len(items)), shuffle=False,
                                num_workers=0)
    t0 = time.perf_counter()
    trainer.fit(model, train_loader, val_loader, ckpt_path=str(last) if resume else None,
                weights_only=True)
    wall = time.perf_counter() - t0
    if not trainer.is_global_zero:  # under DDP only rank 0 writes the run's summary
        return {}
    if not (out / "checkpoints" / "best.ckpt").is_file() and last.is_file():
        with atomic_path(out / "checkpoints" / "best.ckpt") as tmp:
            tmp.write_bytes(last.read_bytes())

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    windows = len(train_ds) * per_sample
    summary = {
        "model": config.model.name, "config": config.base, "seed": seed,
        # windows an epoch trains on: with clip_windows > 1 a sample is a chunk of windows
        "epochs": trainer.current_epoch, "train_windows": windows,
        "train_samples": len(train_ds),
        "processes": trainer.world_size, "batch_per_process": per_process,
        "parameters": sum(p.numel() for p in model.parameters()),
        "wall_s": round(wall, 2),
        "seconds_per_epoch": [round(x, 3) for x in timer.durations],
        "windows_per_s": round(windows / np.mean(timer.durations), 1)
        if timer.durations else None,
        "final_metrics": metrics,
        "best_checkpoint": str(out / "checkpoints" / "best.ckpt"),
        "best_score": None if ckpt.best_model_score is None else float(ckpt.best_model_score),
        "mkl": mkl.status(),
    }
    motor = getattr(getattr(model, "model", None), "motor", None)
    if motor is not None:
        summary["motor_lipschitz_bounds"] = motor.lipschitz_bounds()
        summary["motor_check"] = motor_roundtrip_check(model, train_ds)
    write_json(out / "train.json", summary)
    return summary


#: train settings a resumed run may change (longer training, other resources, validation)
RESUME_MAY_CHANGE = frozenset({"epochs", "threads", "num_workers", "accelerator", "devices",
                               "strategy", "val_items", "val_samples", "val_every",
                               "deterministic", "precision"})


def check_resume(config: RunConfig, last: Path) -> None:
    """Refuse to resume from ``last`` when it cannot be read or was trained with another
    model or training setup than ``config`` (naming what differs); writes nothing."""
    from regnn.errors import CheckpointError

    ck = read_checkpoint(last)
    saved = checkpoint_config(ck, last).to_dict()
    wanted = config.to_dict()
    diffs = []
    for section in ("model", "train"):
        for key, value in wanted[section].items():
            if section == "train" and key in RESUME_MAY_CHANGE:
                continue
            if saved[section].get(key) != value:
                diffs.append(f"{section}.{key}: checkpoint {saved[section].get(key)!r}, "
                             f"requested {value!r}")
    if diffs:
        raise CheckpointError(
            "was trained with another setup, so --resume would mix two runs; "
            + "; ".join(diffs[:8]) + ("; ..." if len(diffs) > 8 else "")
            + ". Resume with the run's own config (RUN/config.yaml) or train into a new "
            "--out", last)


class EpochShuffle(torch.utils.data.Sampler):
    """A random order of ``n`` samples that depends on ``(seed, epoch)`` only."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Any:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


def per_process_batch(batch_size: int, processes: int) -> int:
    """Windows each of ``processes`` data-parallel processes takes from a global batch."""
    if batch_size < 1:
        raise ConfigError(f"train.batch_size must be >= 1, got {batch_size}")
    if batch_size % processes:
        raise ConfigError(f"train.batch_size {batch_size} is the global batch (windows per "
                          f"optimiser step) and must split evenly over the {processes} "
                          f"training processes; choose a multiple of {processes}")
    return batch_size // processes


class _EpochTimer(Callback):
    """Lightning callback recording the wall time of each training epoch (excl. validation,
    which Lightning runs inside the training epoch)."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._t = 0.0
        self._val_t = 0.0
        self._val = 0.0

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._t = time.perf_counter()
        self._val = 0.0

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._val_t = time.perf_counter()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self._val += time.perf_counter() - self._val_t

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.durations.append(time.perf_counter() - self._t - self._val)


@torch.no_grad()
def motor_roundtrip_check(module: Any, train_ds: Any, n: int = 64) -> dict[str, Any]:
    """After training: ``inverse(forward(x))`` on real reaction windows, and
    ``forward(inverse(z))`` on latents sampled around the predicted ``Ẑp``."""
    model = module.model
    model.eval()
    batch = train_ds.__getitems__(list(range(min(n, len(train_ds)))))
    zp, edges, adj = model.distribution(batch.get("face"), batch.get("audio"))
    x = batch["reactions"].transpose(-1, -2)
    z = model.motor(x, edges, adj)
    x_back, info_a = model.motor.inverse(z, edges, adj, tol=model.cfg.inverse_tol,
                                         max_iter=model.cfg.inverse_max_iter)
    latents = zp[:, None] + 0.6 * torch.randn(zp.shape[0], 4, *zp.shape[1:],
                                              generator=torch.Generator().manual_seed(0))
    x_dec, info_b = model.motor.inverse(latents, edges, adj, tol=model.cfg.inverse_tol,
                                        max_iter=model.cfg.inverse_max_iter)
    z_back = model.motor(x_dec, edges, adj)
    return {
        "inverse_forward_max_abs_error": float((x_back - x).abs().max()),
        "forward_inverse_max_abs_error": float((z_back - latents).abs().max()),
        "max_iterations": max(info_a.max_iterations, info_b.max_iterations),
        "converged": info_a.converged and info_b.converged,
    }

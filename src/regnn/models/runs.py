"""Trained runs on disk: the run's config and its checkpoints, loaded safely.

A run folder (``regnn train``) holds ``config.yaml`` and ``checkpoints/{best,last}.ckpt``.
Checkpoints are files other people send around, so they are read with
``torch.load(weights_only=True)`` only: tensors, numbers, strings and containers, never
arbitrary objects (a crafted pickle cannot run code). Any failure to read one is a
:class:`~regnn.errors.CheckpointError` naming the file and what was wrong with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from regnn.config import RunConfig, config_from_dict
from regnn.errors import CheckpointError, ConfigError

CHECKPOINTS = ("best", "last")


def load_run_config(run_dir: str | Path) -> tuple[RunConfig, dict[str, Any]]:
    """The RunConfig saved in ``RUN/config.yaml`` and the extra (data) section."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a training run: {path} is missing")
    try:
        raw = yaml.safe_load(path.read_text("utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the run's config: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(raw).__name__}")
    extra = {"data": raw.pop("data", {})}
    return config_from_dict(raw), extra


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A Lightning checkpoint of regnn, read with ``weights_only=True`` and checked for the
    parts regnn needs (``state_dict``, ``hyper_parameters.config``)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such checkpoint file", path)
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            "cannot be read as a regnn checkpoint (truncated, corrupt, or holding objects other "
            f"than tensors and plain values, which regnn never loads): {reason[:200]}",
            path) from None
    if not isinstance(ck, dict) or not isinstance(ck.get("state_dict"), dict):
        raise CheckpointError("is not a regnn checkpoint: no 'state_dict'", path)
    hp = ck.get("hyper_parameters")
    if not isinstance(hp, dict) or not isinstance(hp.get("config"), dict):
        raise CheckpointError("is not a regnn checkpoint: no 'hyper_parameters.config'", path)
    return ck


def checkpoint_config(ck: dict[str, Any], path: str | Path) -> RunConfig:
    """The run config a checkpoint was trained with."""
    try:
        return config_from_dict(dict(ck["hyper_parameters"]["config"]))
    except ConfigError as exc:
        raise CheckpointError(f"holds an invalid config: {exc}", path) from None


def checkpoint_path(run_dir: str | Path, checkpoint: str = "best") -> Path:
    if checkpoint not in CHECKPOINTS:
        raise ConfigError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, "
                          f"got {checkpoint!r}")
    path = Path(run_dir) / "checkpoints" / f"{checkpoint}.ckpt"
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} not found (train first, or pick best/last)")
    return path


def load_module(run_dir: str | Path, checkpoint: str = "best", map_location: Any = "cpu"
                ) -> Any:
    """The trained LightningModule of a run (``best`` or ``last`` checkpoint), in eval mode."""
    from regnn.models.registry import model_class

    load_run_config(run_dir)  # a clear error when RUN is not a run folder
    path = checkpoint_path(run_dir, checkpoint)
    ck = read_checkpoint(path, map_location)
    config = checkpoint_config(ck, path)
    module = model_class(config.model.name)(ck["hyper_parameters"]["config"])
    try:
        module.load_state_dict(ck["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"does not fit model {config.model.name!r} of its own config: "
                              f"{str(exc).splitlines()[0][:300]}", path) from None
    if isinstance(map_location, str):
        module.to(map_location)
    module.eval()
    return module

"""Named systems of the paper's Tables I and II as config overrides.

A *variant* is a name plus the config overrides that turn the run config into that system:

=================  ======================================================================
``regnn``          the full model (Table I "Ours", Table II "Audio+Video / With AFRDL /
                   REGNN / With MEFL"): regnn's default configuration
``regnn-paper``    the method as the paper's text specifies it (``configs/paper.yaml``'s
                   model and generate sections)
``regnn-authors``  the method as the authors' published code does it (``authors.yaml``)
``face-only``      ``model.use_audio = false`` (Table II "Video")
``audio-only``     ``model.use_face = false`` (Table II "Audio")
``no-afrdl``       ``model.objective = "mse"`` (Table II "Without Graph": the same network
                   trained with an MSE to the one ground-truth reaction)
``iresnet-motor``  ``model.name = model.motor = "iresnet-motor"`` (Table II "i-ResNet")
``no-mefl``        ``model.edge_channels = 1`` (Table II "Without MEFL": single-value edges)
``huang-s``        two-stage cGAN on speaker AUs (Table I), whole clips
``huang-c``        the same on expression probabilities (Table I), whole clips
``unet``           4-level 1-D UNet on the speaker's 25 attributes (Table I), whole clips
``l2l``            Learning to Listen on face + audio (Table I), whole clips
=================  ======================================================================

``regnn train --model NAME`` and ``regnn train --variant NAME`` both apply these overrides
(``--set`` and the other options are applied on top). The comparison systems also get their
own optimiser settings for each budget (``paper`` / ``demo``), see :func:`variant_overrides`:
the paper does not give them, and REGNN's (Adam 1e-4 over 100 epochs of ~30 windows per clip)
would leave a whole-clip model with a handful of steps.
"""

from __future__ import annotations

import copy
from typing import Any

from regnn.errors import ConfigError
from regnn.schema import CLIP_FRAMES

WHOLE_CLIP = {"window": CLIP_FRAMES, "stride": CLIP_FRAMES}

def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra`` recursively (new dict; neither input is modified)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def method_overrides(config_name: str) -> dict[str, Any]:
    """The ``model`` and ``generate`` sections and ``train.clip_windows`` of a built-in config
    (its method, without its sizes and schedule), as overrides: ``paper`` and ``authors`` as
    bench systems."""
    from importlib import resources

    import yaml

    text = resources.files("regnn.configs").joinpath(f"{config_name}.yaml").read_text("utf-8")
    data = yaml.safe_load(text) or {}
    out = {k: data[k] for k in ("model", "generate") if k in data}
    if "clip_windows" in data.get("train", {}):
        out["train"] = {"clip_windows": data["train"]["clip_windows"]}
    return out


VARIANTS: dict[str, dict[str, Any]] = {
    "regnn": {"model": {"name": "regnn"}},
    "regnn-paper": deep_merge({"model": {"name": "regnn"}}, method_overrides("paper")),
    "regnn-authors": deep_merge({"model": {"name": "regnn"}},
                                      method_overrides("authors")),
    "face-only": {"model": {"name": "regnn", "use_audio": False}},
    "audio-only": {"model": {"name": "regnn", "use_face": False}},
    "no-afrdl": {"model": {"name": "regnn", "objective": "mse"}},
    "iresnet-motor": {"model": {"name": "iresnet-motor", "motor": "iresnet"}},
    "no-mefl": {"model": {"name": "regnn", "edge_channels": 1}},
    "huang-s": {"model": {"name": "huang-s", "use_audio": False, **WHOLE_CLIP}},
    "huang-c": {"model": {"name": "huang-c", "use_audio": False, **WHOLE_CLIP}},
    "unet": {"model": {"name": "unet", "use_audio": False, **WHOLE_CLIP}},
    "l2l": {"model": {"name": "l2l", **WHOLE_CLIP}},
}

BASELINES = ("huang-s", "huang-c", "unet", "l2l")
#: the REGNN configurations compared on the new metrics (README "Three configurations")
CONFIGURATIONS = ("regnn", "regnn-paper", "regnn-authors")

# Optimiser settings of the comparison systems, per budget. One epoch of a whole-clip system
# is one pass over the training clips (2n mirrored items). ``appropriate: 1``: they learn from
# the ground truth only, so the loader need not gather other appropriate reactions.
BASELINE_TRAIN: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "huang-s": {"epochs": 100, "batch_size": 16, "lr": 2e-4, "weight_decay": 0.0},
        "huang-c": {"epochs": 100, "batch_size": 16, "lr": 2e-4, "weight_decay": 0.0},
        "unet": {"epochs": 100, "batch_size": 16, "lr": 1e-3, "weight_decay": 0.0},
        "l2l": {"epochs": 100, "batch_size": 16, "lr": 1e-3, "weight_decay": 0.0},
    },
    "demo": {
        "huang-s": {"epochs": 40, "batch_size": 8, "lr": 1e-3, "weight_decay": 0.0},
        "huang-c": {"epochs": 40, "batch_size": 8, "lr": 1e-3, "weight_decay": 0.0},
        "unet": {"epochs": 40, "batch_size": 8, "lr": 2e-3, "weight_decay": 0.0},
        "l2l": {"epochs": 40, "batch_size": 8, "lr": 2e-3, "weight_decay": 0.0},
    },
}


def variant_overrides(name: str, budget: str = "paper") -> dict[str, Any]:
    """Config overrides of variant ``name`` for a ``paper`` or ``demo`` budget.

    Unknown names raise :class:`ConfigError` listing the known ones.
    """
    if name not in VARIANTS:
        raise ConfigError(f"unknown system {name!r}; known: {', '.join(VARIANTS)}")
    ov = copy.deepcopy(VARIANTS[name])
    if name in BASELINES:
        train = BASELINE_TRAIN.get(budget, BASELINE_TRAIN["paper"])[name]
        ov["train"] = {**train, "appropriate": 1, "milestones": []}
    return ov


def resolve(config_name: str, name: str | None, overrides: dict[str, Any] | None = None
            ) -> Any:
    """``load_config(config_name)`` with variant ``name`` applied, then ``overrides``.

    The budget of the baselines' optimiser settings is the config's base (``demo`` for
    ``--config demo`` or a file with ``base: demo``, ``paper`` otherwise).
    """
    from regnn.config import load_config, merge

    config = load_config(config_name)
    if name is not None:
        budget = "demo" if config.base == "demo" or _file_base(config_name) == "demo" else "paper"
        config = merge(config, variant_overrides(name, budget))
    if overrides:
        config = merge(config, overrides)
    return config


def _file_base(config_name: str) -> str | None:
    from pathlib import Path

    import yaml

    path = Path(config_name)
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except yaml.YAMLError:
        return None
    return data.get("base") if isinstance(data, dict) else None

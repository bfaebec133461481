"""Model registry: ``regnn train --model NAME`` looks the name up here.

A model is a :class:`regnn.models.module.ReactionModule` subclass built from a run-config
dict; it implements ``compute_losses(batch)`` and ``generate_clips(face, audio, k, sigma,
generator)``. Comparison systems register themselves with :func:`register`, e.g.::

    from regnn.models.registry import register
    register("unet", UNetModule)

Ablations of REGNN are config switches of the ``regnn`` entry (``model.use_audio``,
``model.use_face``, ``model.edge_channels = 1``, ``model.objective = "mse"``, ``model.motor``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from regnn.errors import ConfigError
from regnn.models.module import ReactionModule, REGNNModule

ModelBuilder = Callable[[dict[str, Any]], ReactionModule]

MODELS: dict[str, type[ReactionModule]] = {"regnn": REGNNModule}

# models living outside regnn.models, imported on first use ("module:Class")
PLUGINS: dict[str, str] = {"regnn-online": "regnn.online.model:OnlineREGNNModule"}


def register(name: str, cls: type[ReactionModule]) -> None:
    """Make ``cls`` available as ``--model name``."""
    MODELS[name] = cls


def model_class(name: str) -> type[ReactionModule]:
    if name not in MODELS and name in PLUGINS:
        module, cls = PLUGINS[name].split(":")
        register(name, getattr(importlib.import_module(module), cls))
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(sorted(set(MODELS) | set(PLUGINS)))
        raise ConfigError(f"unknown model {name!r}; available: {known}") from None


def build_model(config: dict[str, Any]) -> ReactionModule:
    """Instantiate the model named by ``config["model"]["name"]``."""
    return model_class(config["model"]["name"])(config)


def _register_builtin_systems() -> None:
    """The paper's comparison systems and the i-ResNet ablation (regnn.models.baselines)."""
    from regnn.models.baselines.lightning import MODULES

    for name, cls in MODULES.items():
        register(name, cls)


_register_builtin_systems()

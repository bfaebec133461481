"""``--device`` values: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (a CUDA device when there is
one, else the CPU), checked with a clear error before any work."""

from __future__ import annotations

import re
from typing import Any

from regnn.errors import ConfigError

DEVICE_HELP = "cpu, cuda, cuda:N or auto (CUDA when available, else cpu)"
_PATTERN = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


def resolve_device(spec: Any = "cpu") -> Any:
    """The ``torch.device`` a ``--device`` value names; refuses unknown names and CUDA devices
    this machine does not have (naming what it has)."""
    import torch

    if isinstance(spec, torch.device):
        spec = str(spec)
    text = "cpu" if spec is None else str(spec).strip().lower()
    if not _PATTERN.match(text):
        raise ConfigError(f"--device {spec!r}: expected {DEVICE_HELP}")
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {text}: no CUDA device is available on this machine "
                              "(use --device cpu or auto)")
        index = int(text.split(":")[1]) if ":" in text else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"--device {text}: this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    return torch.device("cpu")

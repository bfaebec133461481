"""Online (causal, frame-by-frame) reaction generation and the real-time reaction server.

* :mod:`regnn.online.stream` — the :class:`ReactionStream` interface (``push`` speaker frames
  and audio, get the next listener frames of K reactions) and its chunk-wise base class;
* :mod:`regnn.online.audio` — streaming log-mel features equal to the offline ones;
* :mod:`regnn.online.protocol`, :mod:`regnn.online.server`, :mod:`regnn.online.client` — the
  WebSocket server of ``regnn serve`` and its JSON protocol (docs/online.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regnn.online.stream import ReactionStream

__all__ = ["ReactionStream", "open_stream"]


def open_stream(model: Any, k: int = 1, seed: int = 0, **options: Any) -> ReactionStream:
    """The :class:`ReactionStream` of ``k`` reactions of an online REGNN (a run folder, a loaded
    online run or an ``OnlineREGNN``); ``options`` are those of
    :func:`regnn.online.model.open_stream` (loaded on first use: it needs torch)."""
    from regnn.online.model import open_stream as _open

    if isinstance(model, str):
        model = Path(model)
    return _open(model, k, seed, **options)

"""Online (causal, frame-by-frame) reaction generation and the real-time reaction server.

* :mod:`regnn.online.stream` — the :class:`ReactionStream` interface (``push`` speaker frames
  and audio, get the next listener frames of K reactions) and its chunk-wise base class;
* :mod:`regnn.online.audio` — streaming log-mel features equal to the offline ones;
* :mod:`regnn.online.protocol`, :mod:`regnn.online.server`, :mod:`regnn.online.client` — the
  WebSocket server of ``regnn serve`` and its JSON protocol (docs/online.md).
"""

from regnn.online.stream import ReactionStream

__all__ = ["ReactionStream"]

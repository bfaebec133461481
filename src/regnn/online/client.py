"""A small synchronous client of ``regnn serve`` (examples, tests, scripts).

    with ReactionClient("ws://127.0.0.1:8765") as client:
        info = client.start(k=3, seed=0)
        listener = client.send(face_frames, audio_samples, sample_rate=16000)  # (K, n_out, 25)
        client.end()

``health(url)`` fetches ``/health``. Errors sent by the server raise :class:`ServerError`
(with the protocol's ``code``). ``token=`` is sent as ``Authorization: Bearer TOKEN`` to a
server started with ``--token``/``--token-file``.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import numpy as np

from regnn import schema
from regnn.online import protocol


class ServerError(Exception):
    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(f"{reply.get('code')}: {reply.get('message')}")
        self.code = reply.get("code")
        self.reply = reply


def health(url: str, timeout: float = 5.0, token: str | None = None) -> dict[str, Any]:
    """``GET /health`` of the server at ``url`` (``ws://host:port`` or ``http://host:port``)."""
    http = url.replace("ws://", "http://", 1).rstrip("/")
    for suffix in ("/ws",):
        if http.endswith(suffix):
            http = http[: -len(suffix)]
    request = urllib.request.Request(f"{http}/health", headers={} if token is None else
                                     {"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))


class ReactionClient:
    """Blocking WebSocket client: one session per connection."""

    def __init__(self, url: str, timeout: float = 30.0, token: str | None = None) -> None:
        self.url, self.timeout, self.token = url, timeout, token
        self.info: dict[str, Any] = {}
        self._ws: Any = None
        self._seq = 0

    def __enter__(self) -> ReactionClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        from websockets.sync.client import connect

        headers = None if self.token is None else {"Authorization": f"Bearer {self.token}"}
        self._ws = connect(self.url, open_timeout=self.timeout, max_size=2**24, legacy=True,
                           additional_headers=headers)

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def request(self, message: dict[str, Any] | str) -> dict[str, Any]:
        """Send one message (a dict or raw text) and return the server's JSON reply."""
        self._ws.send(message if isinstance(message, str) else json.dumps(message))
        return json.loads(self._ws.recv(timeout=self.timeout))

    def _check(self, reply: dict[str, Any]) -> dict[str, Any]:
        if reply.get("type") == "error":
            raise ServerError(reply)
        return reply

    def start(self, k: int = 1, seed: int = 0, sigma: float | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = {"type": "start", "k": k, "seed": seed}
        if sigma is not None:
            msg["sigma"] = sigma
        self.info = self._check(self.request(msg))
        return self.info

    def send(self, face: np.ndarray, samples: np.ndarray | None = None,
             sample_rate: int | None = None, encoding: str = "pcm_s16le",
             binary: bool = False) -> np.ndarray:
        """Send speaker frames (and audio); returns the listener frames ``(K, n_out, 25)``.
        ``binary``: the compact binary frame format (docs/online.md) both ways."""
        self._seq += 1
        if binary:
            self._ws.send(protocol.frames_binary(face, samples, sample_rate, self._seq, encoding))
            raw = self._ws.recv(timeout=self.timeout)
            if isinstance(raw, str):  # errors are JSON text
                self._check(json.loads(raw))
                raise ServerError({"code": "bad-reply", "message": raw[:200]})
            return protocol.decode_reaction(raw)["frames"].copy()
        reply = self._check(self.request(protocol.frames_message(face, samples, sample_rate,
                                                                 self._seq, encoding)))
        frames = np.asarray(reply["frames"], dtype=np.float32)
        k = int(self.info.get("k", frames.shape[0] if frames.ndim else 1))
        return frames.reshape(k, -1, schema.NUM_ATTRIBUTES)

    def end(self) -> dict[str, Any]:
        return self._check(self.request({"type": "end"}))

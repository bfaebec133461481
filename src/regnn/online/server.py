"""``regnn serve``: a WebSocket server streaming listener reactions to live speakers.

One process holds one model; every WebSocket connection is a session with its own
:class:`~regnn.online.stream.ReactionStream` (its own buffers, noise generator and carried
state), created by a ``factory(k, seed, sigma)``. Messages follow
:mod:`regnn.online.protocol` (docs/online.md). The model runs in a small thread pool
(``workers`` threads, PyTorch releases the GIL inside its kernels) so that the event loop keeps
reading and answering other sessions while one chunk is being generated; the messages of one
session are processed in order, one at a time.

``GET /health`` (plain HTTP on the same port) answers ``200`` with a JSON status: model,
sessions open / allowed, frames served, uptime.

Library use (tests, benchmarks)::

    server = ReactionServer(factory, host="127.0.0.1", port=0)
    with ServerThread(server) as url:      # serves in a background thread
        ...                                # url == "ws://127.0.0.1:<port>"
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import numpy as np

from regnn import schema
from regnn.errors import RegnnError
from regnn.online import protocol
from regnn.online.stream import ReactionStream

log = logging.getLogger("regnn.serve")

StreamFactory = Callable[[int, int, "float | None"], ReactionStream]


class ReactionServer:
    """WebSocket reaction server (see the module docstring).

    ``factory(k, seed, sigma) -> ReactionStream`` makes one session's stream; ``k_max`` bounds
    the K a client may ask for; ``max_sessions`` bounds concurrent sessions (a further ``start``
    is answered with an ``error`` of code ``busy``); ``workers`` is the size of the model's
    thread pool; ``model_name`` is reported by ``/health`` and ``started``.
    """

    def __init__(self, factory: StreamFactory, host: str = "127.0.0.1", port: int = 8765, *,
                 k_max: int = 10, max_sessions: int = 32, workers: int = 2,
                 model_name: str = "model", max_message_bytes: int = 4 * 2**20,
                 decimals: int = 5) -> None:
        self.factory, self.host, self.port = factory, host, port
        self.k_max, self.max_sessions, self.workers = k_max, max_sessions, workers
        self.model_name, self.max_message_bytes, self.decimals = (model_name, max_message_bytes,
                                                                  decimals)
        self.sessions = 0
        self.sessions_total = 0
        self.frames_served = 0
        self.errors = 0
        self.started_at = time.time()
        self._ids = itertools.count(1)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._server: Any = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        from websockets.asyncio.server import serve

        self._pool = concurrent.futures.ThreadPoolExecutor(self.workers,
                                                           thread_name_prefix="regnn-model")
        self._server = await serve(self._session, self.host, self.port,
                                   process_request=self._http, max_size=self.max_message_bytes,
                                   ping_interval=20, ping_timeout=20)
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self.started_at = time.time()
        log.info("serving %s on ws://%s:%d (health: http://%s:%d/health)", self.model_name,
                 self.host, self.port, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Future()  # until cancelled (Ctrl-C)
        finally:
            await self.stop()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok", "model": self.model_name, "protocol": protocol.PROTOCOL_VERSION,
            "sessions": self.sessions, "max_sessions": self.max_sessions,
            "sessions_total": self.sessions_total, "frames_served": self.frames_served,
            "errors": self.errors, "k_max": self.k_max, "fps": schema.FPS,
            "uptime_s": round(time.time() - self.started_at, 1),
        }

    # -- HTTP ---------------------------------------------------------------------------------
    def _http(self, connection: Any, request: Any) -> Any:
        path = request.path.split("?", 1)[0]
        if path == "/health":
            response = connection.respond(HTTPStatus.OK, json.dumps(self.health()) + "\n")
            response.headers["Content-Type"] = "application/json"
            return response
        if path not in ("/", "/ws"):
            return connection.respond(HTTPStatus.NOT_FOUND,
                                      f"no such endpoint {path!r}: WebSocket sessions on / or "
                                      "/ws, status on /health\n")
        return None  # go on with the WebSocket handshake

    # -- one session ----------------------------------------------------------------------------
    async def _session(self, ws: Any) -> None:
        stream: ReactionStream | None = None
        sid = None
        loop = asyncio.get_running_loop()
        try:
            async for raw in ws:
                try:
                    msg = protocol.parse(raw, self.k_max)
                    if isinstance(msg, protocol.Start):
                        if stream is not None:
                            raise protocol.ProtocolError(
                                "already-started", f"session {sid} is already started; send "
                                "'end' and open a new connection for another session")
                        if self.sessions >= self.max_sessions:
                            raise protocol.ProtocolError(
                                "busy", f"the server is at its limit of {self.max_sessions} "
                                "concurrent sessions; try again later")
                        self.sessions += 1  # reserve the slot before awaiting
                        try:
                            stream = await loop.run_in_executor(
                                self._pool, self.factory, msg.k, msg.seed, msg.sigma)
                        except RegnnError as exc:  # e.g. a sigma the model refuses
                            self.sessions -= 1
                            raise protocol.ProtocolError("bad-message", str(exc)) from None
                        except BaseException:
                            self.sessions -= 1
                            raise
                        self.sessions_total += 1
                        sid = f"s{next(self._ids)}"
                        reply = {"type": "started", "session": sid,
                                 "protocol": protocol.PROTOCOL_VERSION, "seed": msg.seed,
                                 "sigma": msg.sigma, "model": self.model_name,
                                 "attributes": list(schema.ATTRIBUTE_NAMES), **stream.describe()}
                        await ws.send(json.dumps(reply))
                    elif isinstance(msg, protocol.Frames):
                        if stream is None:
                            raise protocol.ProtocolError(
                                "no-session", "send a 'start' message before 'frames'", msg.seq)
                        await ws.send(await self._frames(loop, stream, msg))
                    else:  # End
                        reply = {"type": "ended", "frames_in": 0, "frames_out": 0}
                        if stream is not None:
                            reply.update(frames_in=stream.frames_in, frames_out=stream.frames_out)
                            stream = None  # free the slot before the closing handshake
                            self.sessions -= 1
                        await ws.send(json.dumps(reply))
                        await ws.close()
                        break
                except protocol.ProtocolError as exc:
                    self.errors += 1
                    await ws.send(json.dumps(exc.reply()))
        except Exception as exc:  # a closed connection mid-send, or a bug: log, never crash
            from websockets.exceptions import ConnectionClosed

            if not isinstance(exc, ConnectionClosed):
                log.exception("session %s failed", sid)
                self.errors += 1
                with contextlib.suppress(Exception):  # the connection may be gone
                    await ws.send(json.dumps({"type": "error", "code": "internal",
                                              "message": f"internal error: {exc}"}))
        finally:
            if stream is not None:
                self.sessions -= 1

    async def _frames(self, loop: asyncio.AbstractEventLoop, stream: ReactionStream,
                      msg: protocol.Frames) -> str:
        t0 = time.perf_counter()
        start = stream.frames_out
        try:
            out = await loop.run_in_executor(self._pool, stream.push, msg.face, msg.samples,
                                             msg.sample_rate)
        except RegnnError as exc:
            raise protocol.ProtocolError("rejected", str(exc), msg.seq) from None
        compute_ms = (time.perf_counter() - t0) * 1e3
        self.frames_served += out.shape[1]
        reply = {"type": "reaction", "seq": msg.seq, "start": start,
                 "frames": np.round(out, self.decimals).tolist(),
                 "frames_in": stream.frames_in, "compute_ms": round(compute_ms, 3)}
        return json.dumps(reply)


class ServerThread:
    """Run a :class:`ReactionServer` in a background thread (tests, benchmarks, notebooks).

    ``with ServerThread(server) as url: ...`` starts it, yields its ``ws://`` URL and stops it.
    """

    def __init__(self, server: ReactionServer) -> None:
        self.server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    def __enter__(self) -> str:
        self._thread = threading.Thread(target=self._run, name="regnn-serve", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._error is not None:
            raise self._error
        return self.server.url

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                await self.server.start()
            except BaseException as exc:  # e.g. port in use
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            await self._stop.wait()
            await self.server.stop()

        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(main())
        finally:
            self._loop.close()

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30)

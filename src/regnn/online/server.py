"""``regnn serve``: a WebSocket server streaming listener reactions to live speakers.

One process holds one model; every WebSocket connection is a session with its own
:class:`~regnn.online.stream.ReactionStream` (its own buffers, noise generator and carried
state), created by a ``factory(k, seed, sigma)``. Messages follow
:mod:`regnn.online.protocol` (docs/online.md). The model runs in a small thread pool
(``workers`` threads, PyTorch releases the GIL inside its kernels) so that the event loop keeps
reading and answering other sessions while one chunk is being generated; the sessions due
together are computed as one batch (:mod:`regnn.online.batching`); the messages of one
session are processed in order, one at a time.

``GET /health`` (plain HTTP on the same port) answers ``200`` with a JSON status: model,
sessions open / allowed, frames served, uptime.

Against hostile or clumsy clients (docs/online.md, "Limits and security"):

* **Handshake**: a browser ``Origin`` must be a same-host page (``http(s)://localhost``,
  ``127.0.0.1`` or ``[::1]``, any port) or listed in ``allowed_origins`` (``"*"``: any);
  requests without ``Origin`` (non-browser tools) pass. With a ``token``, every request
  (``/health`` too) needs ``Authorization: Bearer TOKEN`` or ``?token=TOKEN`` (401
  otherwise). Beyond ``max_connections`` open connections the handshake gets 503.
* **Before ``start``**: messages of at most ``protocol.MAX_START_BYTES``; a larger one or no
  ``start`` within ``start_timeout`` seconds closes the connection.
* **Messages** are at most ``max_message_bytes`` (computed from 250 frames and their audio);
  those over ``INLINE_PARSE_BYTES`` (one frame with its 40 ms of audio is ~2.5 kB) are parsed
  in a worker *process*: ``json.loads`` of megabytes holds the GIL, so a thread would still
  stall the event loop. Every malformed value is a ``bad-*`` error and the session goes on;
  unexpected failures are logged here and the client gets a fixed text, never the exception.
* Each session handles one message at a time, so one client occupies at most one model
  worker and one parser; its unread replies stall only its own connection.

Library use (tests, benchmarks)::

    server = ReactionServer(factory, host="127.0.0.1", port=0)
    with ServerThread(server) as url:      # serves in a background thread
        ...                                # url == "ws://127.0.0.1:<port>"
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import itertools
import json
import logging
import multiprocessing
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import numpy as np

from regnn import schema
from regnn.errors import RegnnError
from regnn.online import protocol
from regnn.online.batching import BATCH_WAIT, Batcher
from regnn.online.stream import ReactionStream

log = logging.getLogger("regnn.serve")

StreamFactory = Callable[[int, int, "float | None"], ReactionStream]

#: Messages up to this size are parsed on the event loop (well under a millisecond); larger
#: ones in the parser process.
INLINE_PARSE_BYTES = 64 * 1024
#: Browser origins allowed without ``--allow-origin``: pages served by this machine.
LOCAL_ORIGIN = re.compile(r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$")
TIMING_STAGES = ("parse", "queue", "model", "encode", "send")
INTERNAL_MESSAGE = "internal server error (logged on the server); the session is closed"


def _exit_with_parent(parent: int) -> None:
    """In the parser process: run at a lower CPU priority than the server (large messages
    are bulk work; the event loop answering real-time sessions comes first), and exit when
    the server process is gone (killed without running its shutdown) instead of living on
    as an orphan."""
    with contextlib.suppress(OSError, AttributeError):  # no os.nice on Windows
        os.nice(10)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="regnn-parse-watch", daemon=True).start()


def origin_allowed(origin: str, allowed: Iterable[str] = ()) -> bool:
    """Whether a browser page from ``origin`` may open sessions: same-host pages always,
    others when listed in ``allowed`` (exact ``scheme://host[:port]``, or ``"*"``)."""
    origin = origin.strip().rstrip("/").lower()
    if LOCAL_ORIGIN.match(origin):
        return True
    return any(a == "*" or a.strip().rstrip("/").lower() == origin for a in allowed)


class ReactionServer:
    """WebSocket reaction server (see the module docstring).

    ``factory(k, seed, sigma) -> ReactionStream`` makes one session's stream; ``k_max`` bounds
    the K a client may ask for; ``max_sessions`` bounds concurrent sessions (a further ``start``
    is answered with an ``error`` of code ``busy``); ``workers`` is the size of the model's
    thread pool (0: the batches of small messages are computed on the event loop, the rest in
    one thread; see :mod:`regnn.online.batching`); ``batch_wait``: with ``workers=0``, the
    seconds a push with a chunk due waits for others to form a batch; ``model_name`` is
    reported by ``/health`` and ``started``.
    ``max_connections`` bounds open WebSocket connections (503 beyond), ``start_timeout``
    closes connections without ``start``; ``allowed_origins`` and ``token``: see the module
    docstring; ``parse_process=False`` parses large messages in a thread instead (tests).
    """

    def __init__(self, factory: StreamFactory, host: str = "127.0.0.1", port: int = 8765, *,
                 k_max: int = 10, max_sessions: int = 32, workers: int = 2,
                 model_name: str = "model",
                 max_message_bytes: int = protocol.MAX_MESSAGE_BYTES,
                 decimals: int = 5, max_connections: int = 64, start_timeout: float = 5.0,
                 allowed_origins: Iterable[str] = (), token: str | None = None,
                 parse_process: bool = True, compression: bool = False,
                 reuse_port: bool = False, process: tuple[int, int] = (1, 1),
                 batch_wait: float = BATCH_WAIT) -> None:
        self.factory, self.host, self.port = factory, host, port
        self.k_max, self.max_sessions, self.workers = k_max, max_sessions, workers
        self.model_name, self.max_message_bytes, self.decimals = (model_name, max_message_bytes,
                                                                  decimals)
        self.max_connections, self.start_timeout = max_connections, start_timeout
        self.allowed_origins = tuple(allowed_origins)
        self.token = token or None
        self.parse_process = parse_process
        # permessage-deflate off by default: it cost ~4 % of the server's CPU under load
        # (py-spy) to shrink loopback/LAN messages that are mostly float32 frames
        self.compression = compression
        # several server processes on one port (regnn serve --processes): SO_REUSEPORT, and
        # which of them this is (reported by /health: each process counts its own sessions)
        self.reuse_port, self.process = reuse_port, process
        self.batch_wait = batch_wait
        self.connections = 0
        self.refused = 0
        self.sessions = 0
        self.sessions_total = 0
        self.frames_served = 0
        self.errors = 0
        self.started_at = time.time()
        self._ids = itertools.count(1)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._parser: concurrent.futures.Executor | None = None
        self._server: Any = None
        self._admitted: set[Any] = set()
        self._batcher: Batcher | None = None
        #: where the time of answered ``frames`` messages goes: stage -> seconds in all
        #: (parse; wait for a model worker; model; encode the reply; send it), and how many
        self.timing: dict[str, float] = dict.fromkeys(TIMING_STAGES, 0.0)
        self.timed_messages = 0

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        from websockets.asyncio.server import serve

        threads = max(self.workers, 1)
        self._pool = concurrent.futures.ThreadPoolExecutor(threads,
                                                           thread_name_prefix="regnn-model")
        # the sessions due together are computed as one batch (regnn.online.batching);
        # workers=0: the small messages' batches on the loop, the rest in one thread
        self._batcher = Batcher(self._pool, threads, on_loop=self.workers == 0,
                                wait=self.batch_wait)
        self._parser = self._new_parser()
        # max_queue: at most 4 unread messages buffered per connection (memory bound);
        # open_timeout: a TCP connection that never completes the handshake is dropped
        self._server = await serve(self._session, self.host, self.port,
                                   process_request=self._http, max_size=self.max_message_bytes,
                                   max_queue=4, open_timeout=max(self.start_timeout, 1.0),
                                   ping_interval=20, ping_timeout=20,
                                   compression="deflate" if self.compression else None,
                                   reuse_port=self.reuse_port or None)
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
        if self._parser is not None:
            self._parser.shutdown(wait=True, cancel_futures=True)
            self._parser = None

    def _new_parser(self) -> concurrent.futures.Executor:
        if not self.parse_process:
            return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="regnn-parse")
        # spawn: no fork of a process holding torch's threads; the child imports only the
        # protocol module (numpy), and is started now, not on the first large message
        pool = concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=_exit_with_parent,
            initargs=(os.getpid(),))
        pool.submit(protocol.parse, '{"type": "end"}').result(timeout=120)
        return pool

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
            "connections": self.connections, "max_connections": self.max_connections,
            "refused": self.refused,
            "sessions_total": self.sessions_total, "frames_served": self.frames_served,
            "errors": self.errors, "k_max": self.k_max, "fps": schema.FPS,
            "uptime_s": round(time.time() - self.started_at, 1),
            # this process and how many serve the port (the counters above are its own)
            "process": self.process[0], "processes": self.process[1],
            # per answered frames message: mean ms per stage, and the totals behind the means
            "timing_ms": {k: round(t / self.timed_messages * 1e3, 4) if self.timed_messages
                          else None for k, t in self.timing.items()},
            "timing_total_s": {k: round(t, 6) for k, t in self.timing.items()},
            "timing_messages": self.timed_messages,
            "batch_mean": None if self._batcher is None else self._batcher.mean_batch,
            # frames messages answered on the loop (no chunk due), not through a model worker
            "answered_inline": 0 if self._batcher is None else self._batcher.inline,
        }

    # -- HTTP ---------------------------------------------------------------------------------
    def _authorized(self, request: Any, query: str) -> bool:
        if self.token is None:
            return True
        expected = self.token.encode("utf-8")
        given = [v[len("bearer "):].strip() for v in request.headers.get_all("Authorization")
                 if v[:len("bearer ")].lower() == "bearer "]
        given += urllib.parse.parse_qs(query).get("token", [])
        return any(hmac.compare_digest(g.encode("utf-8"), expected) for g in given)

    def _refuse(self, connection: Any, status: HTTPStatus, text: str) -> Any:
        self.refused += 1
        log.info("refused a connection: %d %s", status.value, text)
        return connection.respond(status, text + "\n")

    def _http(self, connection: Any, request: Any) -> Any:
        path, _, query = request.path.partition("?")
        if path == "/health":
            if not self._authorized(request, query):
                return self._refuse(connection, HTTPStatus.UNAUTHORIZED,
                                    "this server needs a token: 'Authorization: Bearer TOKEN' "
                                    "or ?token=TOKEN")
            response = connection.respond(HTTPStatus.OK, json.dumps(self.health()) + "\n")
            response.headers["Content-Type"] = "application/json"
            return response
        if path not in ("/", "/ws"):
            return connection.respond(HTTPStatus.NOT_FOUND,
                                      f"no such endpoint {path[:60]!r}: WebSocket sessions on / "
                                      "or /ws, status on /health\n")
        origins = request.headers.get_all("Origin")
        if len(origins) > 1 or (origins and not origin_allowed(origins[0],
                                                                self.allowed_origins)):
            return self._refuse(connection, HTTPStatus.FORBIDDEN,
                                f"origin {origins[0][:80]!r} is not allowed (pages on this "
                                "machine are; start the server with --allow-origin ORIGIN for "
                                "others)")
        if not self._authorized(request, query):
            return self._refuse(connection, HTTPStatus.UNAUTHORIZED,
                                "missing or wrong token: send 'Authorization: Bearer TOKEN' or "
                                "connect to ?token=TOKEN")
        # admitted connections, open or still in their handshake (a burst of handshakes must
        # not all pass before the first is open); closed ones are dropped here
        self._admitted = {c for c in self._admitted if not c.transport.is_closing()}
        if len(self._admitted) >= self.max_connections:
            response = self._refuse(connection, HTTPStatus.SERVICE_UNAVAILABLE,
                                    f"the server is at its limit of {self.max_connections} "
                                    "connections; try again later")
            response.headers["Retry-After"] = "5"
            return response
        self._admitted.add(connection)
        return None  # go on with the WebSocket handshake

    # -- one session ----------------------------------------------------------------------------
    async def _parse(self, raw: str | bytes) -> protocol.Start | protocol.Frames | protocol.End:
        """``protocol.parse``, on the loop for small messages, in the parser for large ones.
        A failure that is not a :class:`~regnn.online.protocol.ProtocolError` (a case the
        protocol module missed) is logged and answered ``bad-message``: the session goes on."""
        try:
            # binary frames are a header and np.frombuffer: fast at any size, parsed inline
            if (not isinstance(raw, str) or len(raw) <= INLINE_PARSE_BYTES
                    or self._parser is None):
                return protocol.parse(raw, self.k_max)
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(self._parser, protocol.parse, raw, self.k_max)
            except concurrent.futures.BrokenExecutor:  # the parser process died: replace it
                log.error("the message parser died; restarting it")
                old, self._parser = self._parser, None
                old.shutdown(wait=False, cancel_futures=True)
                self._parser = await loop.run_in_executor(None, self._new_parser)
                raise
        except protocol.ProtocolError:
            raise
        except Exception:
            log.exception("unexpected failure parsing a %d-byte message", len(raw))
            raise protocol.ProtocolError("bad-message", "the message could not be read as a "
                                         "protocol message") from None

    async def _session(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        stream: ReactionStream | None = None
        sid = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        self.connections += 1
        try:
            while True:
                try:
                    if stream is None:  # the start timeout runs until a session is open
                        raw = await asyncio.wait_for(ws.recv(),
                                                     max(deadline - loop.time(), 0.0))
                    else:
                        raw = await ws.recv()
                except TimeoutError:
                    await ws.send(json.dumps({
                        "type": "error", "code": "start-timeout",
                        "message": f"no 'start' within {self.start_timeout:g} s; closing"}))
                    await ws.close(1008, "no start")
                    break
                except ConnectionClosed:
                    break
                if stream is None and len(raw) > protocol.MAX_START_BYTES:
                    self.errors += 1
                    await ws.send(json.dumps({
                        "type": "error", "code": "too-large",
                        "message": f"a {len(raw)}-byte message before 'start': at most "
                                   f"{protocol.MAX_START_BYTES} bytes until a session is "
                                   "started; closing"}))
                    await ws.close(1009, "message too big before start")
                    break
                try:
                    t_parse = time.perf_counter()
                    msg = await self._parse(raw)
                    t_parse = time.perf_counter() - t_parse
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
                        reply_msg, stages = await self._frames(loop, stream, msg)
                        t_send = time.perf_counter()
                        await ws.send(reply_msg)
                        stages.update(parse=t_parse, send=time.perf_counter() - t_send)
                        for stage, seconds in stages.items():
                            self.timing[stage] += seconds
                        self.timed_messages += 1
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
            if not isinstance(exc, ConnectionClosed):
                log.exception("session %s failed", sid)
                self.errors += 1
                with contextlib.suppress(Exception):  # the connection may be gone
                    await ws.send(json.dumps({"type": "error", "code": "internal",
                                              "message": INTERNAL_MESSAGE}))
                    await ws.close(1011, "internal error")
        finally:
            self.connections -= 1
            self._admitted.discard(ws)
            if stream is not None:
                self.sessions -= 1

    async def _frames(self, loop: asyncio.AbstractEventLoop, stream: ReactionStream,
                      msg: protocol.Frames) -> tuple[str | bytes, dict[str, float]]:
        """The reply to a ``frames`` message, and the seconds of its queue, model and encode
        stages."""
        t0 = time.perf_counter()
        start = stream.frames_out
        assert self._batcher is not None
        out, began, done = await self._batcher.push(stream, msg.face, msg.samples,
                                                    msg.sample_rate)
        if isinstance(out, RegnnError):
            raise protocol.ProtocolError("rejected", str(out), msg.seq)
        if isinstance(out, BaseException):  # a fault: logged by the session, never echoed
            raise out
        compute_ms = (time.perf_counter() - t0) * 1e3
        self.frames_served += out.shape[1]
        t_enc = time.perf_counter()
        if msg.binary:
            reply_msg: str | bytes = protocol.reaction_binary(out, msg.seq, start,
                                                              stream.frames_in, compute_ms)
        else:
            reply_msg = json.dumps({"type": "reaction", "seq": msg.seq, "start": start,
                                    "frames": np.round(out, self.decimals).tolist(),
                                    "frames_in": stream.frames_in,
                                    "compute_ms": round(compute_ms, 3)})
        return reply_msg, {"queue": began - t0, "model": done - began,
                           "encode": time.perf_counter() - t_enc}


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

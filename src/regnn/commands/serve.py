"""``regnn serve``: stream listener reactions to live speakers over WebSocket."""

from __future__ import annotations

import argparse
from typing import Any

from regnn.commands._common import subcommand


def register(sub: argparse._SubParsersAction) -> None:
    p = subcommand(
        sub, "serve", "real-time reaction server (WebSocket, JSON messages)",
        "Serve an online REGNN run (regnn train --online) over WebSocket: a client opens a "
        "session with {\"type\": \"start\", \"k\": K, \"seed\": S}, sends speaker attribute "
        "frames (25 values each) with their audio (base64 int16/float32 or a float list, any "
        "sample rate) and gets back, for every speaker frame, the next listener frame of each "
        "of the K reactions. One model serves all sessions, each with its own state. "
        "GET /health returns a JSON status. Protocol: docs/online.md; client: "
        "examples/online_client.py.",
    )
    p.add_argument("--run", help="run folder of an online model (regnn train --online)")
    p.add_argument("--toy", action="store_true",
                   help="serve the weight-free causal test stream instead of a run "
                        "(for trying clients and measuring the server itself)")
    p.add_argument("--checkpoint", default="best", choices=("best", "last"),
                   help="checkpoint of the run (default: best)")
    p.add_argument("--device", default="cpu",
                   help="where the model runs: cpu, cuda, cuda:N or auto (the noise is drawn "
                        "on the CPU: a seed gives the same reactions on any device)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default: loopback only; any other address "
                        "needs a token: one is generated and printed unless given)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (0: pick a free one)")
    p.add_argument("--k-max", type=int, default=10, help="largest K a session may ask for")
    p.add_argument("--max-sessions", type=int, default=32, help="concurrent sessions allowed")
    p.add_argument("--workers", type=int, default=None,
                   help="threads running the model batches (default 2; with --processes, "
                        "0); 0 computes the batches of small messages (the one-frame messages "
                        "of paced sessions) on the event loop without a thread hand-off, "
                        "best when a process has a core to itself, and large ones in one "
                        "thread")
    p.add_argument("--batch-wait", type=float, default=8.0, metavar="MS",
                   help="with --workers 0: milliseconds a message with a chunk due waits for "
                        "other sessions' chunks to form one model batch (default 8; 0: "
                        "compute at once). Paced sessions' chunks fall due spread over the "
                        "frame period; a batch has a fixed cost, so under load waiting saves "
                        "the CPU that decides how many sessions stay in real time")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads per worker (1 is best for many small chunks)")
    p.add_argument("--max-connections", type=int, default=64,
                   help="open WebSocket connections allowed (further handshakes get 503)")
    p.add_argument("--start-timeout", type=float, default=5.0,
                   help="seconds a connection may stay open without sending 'start'")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="a browser origin (scheme://host[:port]) allowed besides pages on "
                        "this machine; repeatable; '*' allows any page")
    p.add_argument("--token", help="require this token at the handshake ('Authorization: "
                                   "Bearer TOKEN' or ?token=TOKEN); visible to other users "
                                   "in the process list: prefer --token-file")
    p.add_argument("--token-file", help="read the required token from this file")
    p.add_argument("--processes", type=int, default=1,
                   help="server processes sharing the port (SO_REUSEPORT; Linux, BSD, macOS): "
                        "the kernel spreads connections over them, each with its own model "
                        "copy, sessions (--max-sessions each) and /health counters; one "
                        "process uses little more than one core, as its Python work holds "
                        "one interpreter lock")
    p.add_argument("--compression", action="store_true",
                   help="offer permessage-deflate: a JSON reply of K = 10 shrinks about 2x "
                        "(worth it on slow links), a binary one by 4 %%, at a CPU cost per "
                        "message on both ends; off by default")
    p.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING)")
    p.set_defaults(func=run)


def make_factory(run_dir: str | None, toy: bool, checkpoint: str = "best",  # noqa: ANN201
                 device: str = "cpu"):
    """``(factory(k, seed, sigma) -> ReactionStream, model name)`` for a run or the toy."""
    from regnn.errors import ConfigError
    from regnn.utils.device import resolve_device

    resolve_device(device)  # a device this machine lacks is refused before anything starts
    if toy:
        from regnn.online.stream import ToyStream

        return (lambda k, seed, sigma: ToyStream(k=k, seed=seed)), "toy"
    if not run_dir:
        raise ConfigError("give --run RUN (an online run from regnn train --online) or --toy")
    from regnn.models.runs import load_module
    from regnn.online.model import OnlineREGNNModule

    module = load_module(run_dir, checkpoint, map_location=str(resolve_device(device)))
    if not isinstance(module, OnlineREGNNModule):
        raise ConfigError(f"{run_dir} holds an offline model ({module.config.model.name!r}), "
                          "which needs the whole clip before reacting; train an online one "
                          "with: regnn train --online ...")
    module.online.net.motor.cached_constants()  # γ's SVDs once, before the first session
    name = f"regnn-online ({run_dir}, {checkpoint})"
    return (lambda k, seed, sigma: module.stream(k, seed, sigma)), name


def warm_up(factory) -> None:  # noqa: ANN001
    """One throw-away session before serving: imports, filter banks and the model's first
    call happen now, not in the first client's first frame."""
    import numpy as np

    stream = factory(1, 0, None)
    rng = np.random.default_rng(0)
    for rate in (16_000, 44_100, 48_000):
        s = factory(1, 0, None)
        s.push(rng.random((2, 25)).astype(np.float32),
               rng.standard_normal(2 * rate // 25).astype(np.float32) * 0.1, rate)
    stream.push(rng.random((20, 25)).astype(np.float32),
                rng.standard_normal(20 * 640).astype(np.float32) * 0.1, 16_000)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only listens on this machine."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost, or "" (every interface)
        return False


def read_token(args: argparse.Namespace) -> str | None:
    """The token from ``--token`` or ``--token-file`` (refused: both, empty, unreadable)."""
    from pathlib import Path

    from regnn.errors import ConfigError

    if args.token is not None and args.token_file is not None:
        raise ConfigError("give either --token or --token-file, not both")
    token = args.token
    if args.token_file is not None:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read --token-file {args.token_file}: "
                              f"{type(exc).__name__}") from None
    if token is not None and (not token.strip() or not token.isprintable()
                              or any(c.isspace() for c in token)):
        raise ConfigError("the token must be non-empty printable text without spaces")
    return token


def run(args: argparse.Namespace) -> int:
    import sys

    from regnn.errors import ConfigError

    if args.run and args.toy:
        raise ConfigError("give either --run or --toy, not both")
    for name in ("k_max", "max_sessions", "threads", "max_connections", "processes"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
    if args.workers is None:  # a process per core: the model on its event loop
        args.workers = 0 if args.processes > 1 else 2
    if args.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {args.workers}")
    if not 0 <= args.batch_wait <= 1000:
        raise ConfigError(f"--batch-wait must be in [0, 1000] ms, got {args.batch_wait:g}")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in [0, 65535], got {args.port}")
    if not 0 < args.start_timeout <= 3600:
        raise ConfigError(f"--start-timeout must be in (0, 3600] seconds, got "
                          f"{args.start_timeout}")
    token = read_token(args)
    generated = False
    if not is_loopback(args.host):
        print(f"regnn serve: warning: listening on {args.host!r}, reachable from other "
              "machines; ws:// is not encrypted, so the token can be read on the network: "
              "use a trusted network or a TLS proxy", file=sys.stderr, flush=True)
        if token is None:  # never serve other machines without a token
            import secrets

            token, generated = secrets.token_urlsafe(24), True
    if args.processes > 1:
        return run_processes(args, token, generated)
    import asyncio

    server, model_name = _build_server(args, token, args.port)

    def listening() -> None:
        _announce(model_name, server.url, "", token if generated else None)

    try:
        asyncio.run(_serve_forever(server, listening))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("regnn serve: stopped", flush=True)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    return 0


def _build_server(args: argparse.Namespace, token: str | None, port: int,
                  log_prefix: str = "", **options: Any) -> tuple[Any, str]:
    """Logging, torch threads, the model (warmed up) and its
    :class:`~regnn.online.server.ReactionServer` (not started), with its model name;
    ``options``: the server's multi-process settings."""
    import logging

    import torch

    from regnn.online.server import ReactionServer

    logging.basicConfig(level=args.log_level.upper(),
                        format=f"%(asctime)s {log_prefix}%(name)s %(message)s")
    torch.set_num_threads(args.threads)
    factory, model_name = make_factory(args.run, args.toy, args.checkpoint, args.device)
    warm_up(factory)
    server = ReactionServer(factory, args.host, port, k_max=args.k_max,
                            max_sessions=args.max_sessions, workers=args.workers,
                            model_name=model_name, max_connections=args.max_connections,
                            start_timeout=args.start_timeout,
                            allowed_origins=args.allow_origin, token=token,
                            compression=args.compression,
                            batch_wait=args.batch_wait / 1e3, **options)
    return server, model_name


async def _serve_forever(server: Any, listening: Any) -> None:
    """Start ``server``, call ``listening()``, serve until cancelled, then stop it. SIGTERM
    (kill, systemd, docker stop) stops like Ctrl-C: the parser process and the model threads
    are shut down instead of left behind."""
    import asyncio
    import contextlib
    import signal

    task = asyncio.current_task()
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    await server.start()
    listening()
    try:
        await asyncio.Future()
    finally:
        await server.stop()


def _announce(model_name: str, url: str, note: str, generated_token: str | None) -> None:
    """The line clients (and bench_online.py) read: where the server listens; and the token
    when one was generated."""
    host_port = url.removeprefix("ws://")
    print(f"regnn serve: {model_name} on {url}  ({note}health: http://{host_port}/health; "
          "Ctrl-C stops)", flush=True)
    if generated_token is not None:
        print(f"regnn serve: generated token (clients send 'Authorization: Bearer TOKEN' "
              f"or connect to {url}/?token=TOKEN): {generated_token}", flush=True)


def _serve_child(args: argparse.Namespace, token: str | None, port: int, index: int,
                 ready: Any) -> None:
    """One of ``--processes`` servers (a spawned process): the model, the warm-up and a
    :class:`~regnn.online.server.ReactionServer` bound with SO_REUSEPORT to the shared port;
    reports ``(index, error or None)`` on ``ready`` and serves until terminated."""
    from regnn import mkl

    mkl.apply_vendor_fix()  # a process entry point: before torch loads
    import asyncio
    import contextlib
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the children (SIGTERM)
    try:
        server, _ = _build_server(args, token, port, f"[{index + 1}] ", reuse_port=True,
                                  process=(index + 1, args.processes))
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(_serve_forever(server, lambda: ready.put((index, None))))
    except OSError as exc:
        ready.put((index, f"cannot listen on {args.host}:{port}: {exc}"))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which prints it
        ready.put((index, f"{type(exc).__name__}: {exc}"))


def run_processes(args: argparse.Namespace, token: str | None, generated: bool) -> int:
    """``--processes N``: reserve the port (``--port 0``: a free one), start N servers on it
    with SO_REUSEPORT, print the URL when every one listens, and stop them all on Ctrl-C /
    SIGTERM or when one of them dies."""
    import multiprocessing as mp
    import queue
    import signal
    import socket
    import time

    from regnn.errors import ConfigError

    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("--processes needs SO_REUSEPORT, which this system lacks; "
                          "run one process per port behind a proxy instead")
    if args.toy == bool(args.run):
        raise ConfigError("give --run RUN (an online run from regnn train --online) or --toy")
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)  # keeps the port while children bind
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        holder.bind((args.host.strip("[]"), args.port))
    except OSError as exc:
        holder.close()
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    port = holder.getsockname()[1]
    ctx = mp.get_context("spawn")
    ready = ctx.Queue()
    children = [ctx.Process(target=_serve_child, args=(args, token, port, i, ready),
                            name=f"regnn-serve-{i + 1}")  # not daemonic: each has a parser
                for i in range(args.processes)]

    def stop_all() -> None:
        for c in children:
            if c.is_alive():
                c.terminate()
        for c in children:
            c.join(timeout=10)
            if c.is_alive():
                c.kill()

    stopping = False

    def on_signal(signum: int, frame: object) -> None:  # noqa: ARG001
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for c in children:
            c.start()
        deadline, up = time.monotonic() + 300, 0
        while up < args.processes:
            if stopping:
                return 0
            try:
                index, error = ready.get(timeout=1.0)
            except queue.Empty:
                if time.monotonic() > deadline or not all(c.is_alive() for c in children):
                    raise ConfigError("a server process did not start (see its log above)"
                                      ) from None
                continue
            if error is not None:
                raise ConfigError(f"server process {index + 1}: {error}")
            up += 1
        holder.close()
        name = f"regnn-online ({args.run}, {args.checkpoint})" if args.run else "toy"
        _announce(name, f"ws://{args.host}:{port}",
                  f"{args.processes} processes, each answering on its own; ",
                  token if generated else None)
        while not stopping:
            dead = [c for c in children if not c.is_alive()]
            if dead:
                raise ConfigError(f"server process {dead[0].name} exited "
                                  f"(code {dead[0].exitcode}); stopping the others")
            time.sleep(0.5)
        print("regnn serve: stopped", flush=True)
        return 0
    finally:
        holder.close()
        stop_all()

"""regnn serve against hostile or clumsy clients (issue 17, section 3 and 4).

Fast checks of every defence (origin, token, limits, timeouts, malformed values, abrupt
disconnects, bursts of connections), and a flood test: one client streams megabyte messages
as fast as it can while well-behaved 25 fps sessions must get every reply within a real-time
bound. ``-m slow`` runs a longer, heavier flood.

The flood runs the server and the flooder as separate processes (``regnn serve --toy`` and a
``python -c`` flooder), as in production: in one process the flooder's own Python work would
compete with the server for the GIL and the test would measure itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from regnn.online import protocol
from regnn.online.client import ReactionClient, ServerError, health
from regnn.online.server import ReactionServer, ServerThread, origin_allowed
from regnn.online.stream import ToyStream

SR = 16_000
HOP = SR // 25
SRC = str(Path(__file__).parents[1] / "src")


def toy_factory(k: int, seed: int, sigma: float | None) -> ToyStream:
    return ToyStream(k=k, seed=seed)


def speaker(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    face = np.round(rng.random((n, 25)), 5).astype(np.float32)
    audio = np.round(0.2 * rng.standard_normal(n * HOP) * 32768) / 32768
    return face, audio.astype(np.float32)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ReactionServer, str]]:
    srv = ReactionServer(toy_factory, "127.0.0.1", 0, max_sessions=8, max_connections=12,
                         start_timeout=1.5, model_name="toy")
    with ServerThread(srv) as url:
        yield srv, url


def status_of(url: str, **kwargs: object) -> int:
    """The HTTP status a WebSocket handshake gets (101 when accepted)."""
    try:
        with connect(url, open_timeout=10, **kwargs):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def open_ws(url: str) -> Any:
    """A connection the test closes itself (not a context manager)."""
    return connect(url, open_timeout=10, legacy=True)


def wait_for(predicate, timeout: float = 10.0) -> bool:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# -- handshake: origin, token, connection cap ----------------------------------------------------
def test_origin_allow_list(server: tuple[ReactionServer, str]) -> None:
    _, url = server
    assert status_of(url) == 101  # no Origin: a non-browser tool
    for ok in ("http://localhost:3000", "http://127.0.0.1:8080", "https://localhost",
               "http://[::1]:9000"):
        assert status_of(url, origin=ok) == 101, ok
    for evil in ("http://evil.example", "http://localhost.evil.example",
                 "http://127.0.0.1.evil.example:80", "null", "file://"):
        assert status_of(url, origin=evil) == 403, evil
    assert origin_allowed("https://app.example:8443/", ["https://APP.example:8443"])
    assert not origin_allowed("https://app.example", ["https://app.example:8443"])
    assert origin_allowed("http://evil.example", ["*"])
    allowing = ReactionServer(toy_factory, "127.0.0.1", 0, parse_process=False,
                              allowed_origins=["https://app.example"])
    with ServerThread(allowing) as u:
        assert status_of(u, origin="https://app.example") == 101
        assert status_of(u, origin="http://evil.example") == 403


def test_token_is_required_at_the_handshake() -> None:
    srv = ReactionServer(toy_factory, "127.0.0.1", 0, token="s3cret-token", parse_process=False)
    with ServerThread(srv) as url:
        assert status_of(url) == 401
        assert status_of(url, additional_headers={"Authorization": "Bearer wrong"}) == 401
        assert status_of(f"{url}/?token=wrong") == 401
        assert status_of(url, additional_headers={"Authorization": "Bearer s3cret-token"}) == 101
        assert status_of(f"{url}/?token=s3cret-token") == 101
        with ReactionClient(url, token="s3cret-token") as c:
            assert c.start()["k"] == 1
        with pytest.raises(urllib.error.HTTPError) as err:
            health(url)
        assert err.value.code == 401
        assert health(url, token="s3cret-token")["status"] == "ok"


def test_connection_cap_and_burst() -> None:
    """A burst of 40 simultaneous connections against a cap of 6: the excess is refused at
    the handshake with 503 (none hangs), and afterwards sessions work as before."""
    srv = ReactionServer(toy_factory, "127.0.0.1", 0, max_connections=6, start_timeout=30,
                         parse_process=False)
    with ServerThread(srv) as url:
        held = [open_ws(url) for _ in range(6)]
        assert status_of(url) == 503
        statuses: list[int] = []
        lock = threading.Lock()

        def one() -> None:
            s = status_of(url)
            with lock:
                statuses.append(s)

        threads = [threading.Thread(target=one) for _ in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert statuses == [503] * 40
        for ws in held:
            ws.close()
        assert wait_for(lambda: srv.connections == 0)
        face, audio = speaker(1, 8)
        with ReactionClient(url) as c:
            c.start()
            assert c.send(face, audio, SR).shape == (1, 8, 25)
        assert health(url)["refused"] >= 41


def test_idle_connections_are_closed_after_the_start_timeout(
        server: tuple[ReactionServer, str]) -> None:
    srv, url = server
    idle = [open_ws(url) for _ in range(8)]
    t0 = time.monotonic()
    for ws in idle:
        reply = json.loads(ws.recv(timeout=10))
        assert reply["code"] == "start-timeout"
        with pytest.raises(ConnectionClosed) as err:
            ws.recv(timeout=10)
        assert err.value.rcvd.code == 1008
    assert time.monotonic() - t0 < 6  # start_timeout is 1.5 s
    # messages other than start do not extend the deadline
    with connect(url, open_timeout=10) as ws:
        for _ in range(2):
            ws.send('{"type": "frames", "face": [0]}')
            time.sleep(0.5)
        codes = []
        with pytest.raises(ConnectionClosed):
            while True:
                codes.append(json.loads(ws.recv(timeout=10))["code"])
        assert codes[-1] == "start-timeout"
    assert wait_for(lambda: srv.connections == 0)


# -- message size ---------------------------------------------------------------------------------
def test_the_size_limit_admits_the_largest_legal_message() -> None:
    """MAX_MESSAGE_BYTES is computed, not guessed: 250 frames written at full float64 precision
    with their 10 s of 48 kHz audio as f32le fit, and are served."""
    face = np.full((250, 25), -2.2250738585072014e-308)
    msg = json.loads(protocol.frames_message(np.zeros((250, 25)), seq=2**62))
    msg["face"] = face.tolist()
    msg["audio"] = protocol.encode_audio(np.zeros(250 * 48_000 // 25), 48_000, "f32le")
    text = json.dumps(msg)
    assert len(text) <= protocol.MAX_MESSAGE_BYTES
    assert protocol.MAX_MESSAGE_BYTES - len(text) < 2048  # and the bound is tight
    msg["face"] = np.zeros((250, 25)).tolist()  # a valid face (denormals are clipped anyway)
    srv = ReactionServer(toy_factory, "127.0.0.1", 0)  # the real parser process
    with ServerThread(srv) as url, ReactionClient(url) as c:
        c.start()
        reply = c.request(json.dumps(msg))
        assert reply["type"] == "reaction" and reply["frames_in"] == 250, reply
        with pytest.raises(ConnectionClosed) as err:  # one byte over: closed, 1009
            c.request(text + " " * (protocol.MAX_MESSAGE_BYTES - len(text) + 1))
        assert err.value.rcvd.code == 1009


def test_before_start_only_small_messages(server: tuple[ReactionServer, str]) -> None:
    _, url = server
    big = protocol.frames_message(np.zeros((250, 25)))  # ~40 kB, valid once started
    with connect(url, open_timeout=10) as ws:
        ws.send('{"type": "frames", "seq": 1, "face": [0]}')  # small: answered, still open
        assert json.loads(ws.recv(timeout=10))["code"] == "bad-face"
        ws.send(big)
        reply = json.loads(ws.recv(timeout=10))
        assert reply["code"] == "too-large" and "4096" in reply["message"]
        with pytest.raises(ConnectionClosed) as err:
            ws.recv(timeout=10)
        assert err.value.rcvd.code == 1009
    with ReactionClient(url) as c:  # after start the same message is fine
        c.start()
        assert c.request(big)["type"] == "reaction"


# -- malformed values -----------------------------------------------------------------------------
ZEROS = ", ".join(["0"] * 24)


def frames(first: str = "0", extra: str = "") -> str:
    """A ``frames`` message whose face frame starts with the text ``first``."""
    return '{"type": "frames", ' + extra + '"face": [' + first + ", " + ZEROS + "]}"


def audio(fields: str) -> str:
    return frames(extra='"audio": {' + fields + "}, ")


HOSTILE = [  # (raw message, expected code)
    (frames("1" + "0" * 400), "bad-face"),
    (frames("-" + "9" * 4000), "bad-face"),
    (frames("1e999"), "bad-face"),
    (frames("NaN"), "bad-face"),
    (frames("-Infinity"), "bad-face"),
    (frames("1e39"), "bad-face"),
    ('{"type": "frames", "face": {"a": 1}}', "bad-face"),
    ('{"type": "frames", "face": [[[0]]]}', "bad-face"),
    (frames("null"), "bad-face"),
    (frames(extra='"seq": ' + "7" * 5000 + ", "), "bad-message"),
    (frames(extra='"seq": ' + "7" * 30 + ", "), "bad-message"),
    (frames(extra='"seq": "' + "x" * 5000 + '", '), "bad-message"),
    (frames(extra='"seq": [1], '), "bad-message"),
    (frames(extra='"seq": NaN, '), "bad-message"),
    ('{"type": "start", "k": ' + "9" * 4000 + "}", "bad-message"),
    ('{"type": "start", "k": 2.5}', "bad-message"),
    ('{"type": "start", "sigma": NaN}', "bad-message"),
    ('{"type": "start", "sigma": Infinity}', "bad-message"),
    ('{"type": ' + "1" * 4000 + "}", "bad-message"),
    ('{"type": ["start"]}', "bad-message"),
    ("[" * 100_000 + "]" * 100_000, "bad-json"),
    (audio('"sample_rate": ' + "1" * 4000 + ', "data": ""'), "bad-audio"),
    (audio('"sample_rate": 16000, "channels": NaN, "data": ""'), "bad-audio"),
    (audio('"sample_rate": 16000, "encoding": "float", "data": [1' + "0" * 400 + "]"),
     "bad-audio"),
    (audio('"sample_rate": 16000, "encoding": "float", "data": [NaN]'), "bad-audio"),
    (audio('"sample_rate": 16000, "encoding": "float", "data": 7'), "bad-audio"),
    (frames(extra='"audio": [], '), "bad-audio"),
    (audio('"sample_rate": 16000, "encoding": [1], "data": ""'), "bad-audio"),
]


def test_every_malformed_value_is_a_bad_error_and_the_session_goes_on(
        server: tuple[ReactionServer, str], caplog: pytest.LogCaptureFixture) -> None:
    """Integers like 10**400, a 5,000-digit seq, NaN, wrong types: each gets its bad-* error
    (not ``internal``, which closed the session), no raw exception text, and the session then
    gives exactly what a clean one gives."""
    face, audio = speaker(5, 16)
    caplog.set_level(logging.WARNING, logger="regnn.serve")
    with ReactionClient(server[1]) as c:
        c.start(k=2, seed=3)
        first = c.send(face[:8], audio[:8 * HOP], SR)
        for raw, code in HOSTILE:
            reply = c.request(raw)
            assert reply["type"] == "error" and reply["code"] == code, (raw[:80], reply)
            text = reply["message"]
            assert len(text) < 300, text
            for leak in ("Traceback", "Error:", "sys.set_int_max_str_digits", "OverflowError",
                         "exceeds", "Exceeds"):
                assert leak not in text, (raw[:80], text)
        second = c.send(face[8:], audio[8 * HOP:], SR)
    with ReactionClient(server[1]) as c:
        c.start(k=2, seed=3)
        clean = c.send(face, audio, SR)
    np.testing.assert_array_equal(np.concatenate([first, second], axis=1), clean)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_internal_errors_are_logged_not_echoed(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(ToyStream):
        def push(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
            raise RuntimeError("secret detail /home/user/.cache/model.bin")

    srv = ReactionServer(lambda k, seed, sigma: Broken(k=k, seed=seed), "127.0.0.1", 0,
                         parse_process=False)
    with ServerThread(srv) as url, ReactionClient(url) as c:
        c.start()
        with pytest.raises(ServerError) as err:
            c.send(np.zeros((1, 25), np.float32))
        assert err.value.code == "internal"
        assert "secret" not in str(err.value) and "RuntimeError" not in str(err.value)
    assert any("secret detail" in r.getMessage() or (r.exc_info and "secret detail"
               in str(r.exc_info[1])) for r in caplog.records)


# -- abrupt disconnects ----------------------------------------------------------------------------
def test_abrupt_disconnects_mid_computation(caplog: pytest.LogCaptureFixture) -> None:
    """Clients that vanish (TCP reset, no close frame) while their chunk is being computed:
    nothing is logged as a failure, every slot is freed, and other sessions go on."""
    srv = ReactionServer(lambda k, seed, sigma: ToyStream(k=k, seed=seed, work=4), "127.0.0.1",
                         0, max_sessions=4, parse_process=False)
    caplog.set_level(logging.WARNING, logger="regnn.serve")
    face, audio = speaker(7, 120)
    with ServerThread(srv) as url:
        for i in range(6):
            c = ReactionClient(url)
            c.connect()
            c.start(k=3)
            c._ws.send(protocol.frames_message(face, audio, SR, seq=i))
            if i % 2:  # RST: SO_LINGER 0, then close
                c._ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c._ws.socket.close()
        assert wait_for(lambda: srv.sessions == 0 and srv.connections == 0, 30), srv.health()
        with ReactionClient(url) as c:
            c.start(k=2)
            assert c.send(face[:16], audio[:16 * HOP], SR).shape == (2, 16, 25)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- CLI -------------------------------------------------------------------------------------------
def _serve(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen([sys.executable, "-m", "regnn.cli", "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_cli_checkpoint_is_a_choice(capsys: pytest.CaptureFixture) -> None:
    from regnn.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--run", "x", "--checkpoint", "../x"])
    assert exc.value.code == 2
    assert "invalid choice: '../x'" in capsys.readouterr().err


def test_cli_token_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from regnn.cli import main

    assert main(["serve", "--toy", "--token", "a", "--token-file", "b"]) == 2
    assert "not both" in capsys.readouterr().err
    (tmp_path / "empty").write_text("\n")
    assert main(["serve", "--toy", "--token-file", str(tmp_path / "empty")]) == 2
    assert "must be non-empty" in capsys.readouterr().err
    assert main(["serve", "--toy", "--token-file", str(tmp_path / "missing")]) == 2
    assert "cannot read --token-file" in capsys.readouterr().err


def test_cli_non_loopback_host_gets_a_token_and_a_warning() -> None:
    proc = _serve(["--toy", "--host", "0.0.0.0", "--port", "0", "--log-level", "WARNING"])
    try:
        line = proc.stdout.readline()
        assert " on ws://0.0.0.0:" in line, line
        port = int(line.split(" on ws://0.0.0.0:", 1)[1].split()[0])
        token_line = proc.stdout.readline()
        assert "generated token" in token_line
        token = token_line.rsplit(": ", 1)[1].strip()
        assert len(token) >= 24
        url = f"ws://127.0.0.1:{port}"
        assert status_of(url) == 401
        with ReactionClient(url, token=token) as c:
            assert c.start()["k"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "reachable from other machines" in proc.stderr.read()


# -- flood ----------------------------------------------------------------------------------------
FLOODER = textwrap.dedent("""
    import json, sys, threading, time
    import numpy as np
    from websockets.sync.client import connect
    url, mode, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    rng = np.random.default_rng(0)
    face = np.round(rng.random((250, 25)), 4).tolist()
    audio = np.round(0.1 * rng.standard_normal(250 * 640), 4).tolist()  # 10 s at 16 kHz
    big = json.dumps({"type": "frames", "face": face, "audio": {
        "sample_rate": 16000, "encoding": "float", "data": audio}})
    print(len(big), flush=True)
    sent, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with connect(url, open_timeout=10, max_size=None) as ws:
                if mode == "session":  # a started session: its messages are valid
                    ws.send('{"type": "start"}'); ws.recv(timeout=10)
                def drain():  # read the replies until the connection is gone
                    try:
                        while True:
                            ws.recv()
                    except Exception:
                        pass
                threading.Thread(target=drain, daemon=True).start()
                while time.monotonic() < end:
                    ws.send(big); sent += 1
        except Exception:
            time.sleep(0.01)  # closed by the server: reconnect and go on
    print(sent, flush=True)
""")


async def paced_session(url: str, frames: int, seed: int) -> list[float]:
    """A well-behaved 25 fps speaker: one frame and its 40 ms of audio every 40 ms on a fixed
    clock, without waiting for replies; returns the round trip of every reply (s)."""
    from websockets.asyncio.client import connect as aconnect

    face, audio = speaker(seed, frames)
    sent: dict[int, float] = {}
    lat: list[float] = []
    async with aconnect(url, max_size=2**24, open_timeout=30) as ws:
        await ws.send(json.dumps({"type": "start", "k": 1, "seed": seed}))
        assert json.loads(await ws.recv())["type"] == "started"

        async def receive() -> None:
            while len(lat) < frames:
                msg = json.loads(await ws.recv())
                assert msg["type"] == "reaction", msg
                lat.append(time.perf_counter() - sent[msg["seq"]])

        rx = asyncio.create_task(receive())
        t0 = time.perf_counter() + 0.01 * seed
        for i in range(frames):
            await asyncio.sleep(max(0.0, t0 + i / 25 - time.perf_counter()))
            msg = protocol.frames_message(face[i], audio[i * HOP:(i + 1) * HOP], SR, seq=i)
            sent[i] = time.perf_counter()
            await ws.send(msg)
        await asyncio.wait_for(rx, timeout=60)
        await ws.send('{"type": "end"}')
    return lat


def flood_run(sessions: int, frames: int, flooders: list[str],
              serve_args: tuple[str, ...] = ()) -> dict:
    """``regnn serve --toy`` in its own process, ``flooders`` (``nosession``/``session``)
    in their own processes, then ``sessions`` paced 25 fps sessions of ``frames`` frames;
    returns the round trips (ms) and what the flooders sent. Uses only options the server
    had before the fix, so the test can be run against it."""
    proc = _serve(["--toy", "--port", "0", "--max-sessions", "32", "--log-level", "ERROR",
                   *serve_args])
    floods: list[subprocess.Popen] = []
    try:
        line = proc.stdout.readline()
        assert " on ws://" in line, line
        url = line.split(" on ", 1)[1].split()[0]
        seconds = frames / 25 + 3
        env = {**os.environ, "PYTHONPATH": SRC}
        floods = [subprocess.Popen([sys.executable, "-c", FLOODER, url, mode, str(seconds)],
                                   stdout=subprocess.PIPE, text=True, env=env)
                  for mode in flooders]
        sizes = [int(f.stdout.readline()) for f in floods]
        time.sleep(1.0)  # the flood is on before the sessions start

        async def level() -> list[list[float]]:
            return await asyncio.gather(*[paced_session(url, frames, s)
                                          for s in range(sessions)])

        lats = asyncio.run(level())
        sent = [int(f.stdout.readline() or 0) for f in floods]
        alive = health(url)["status"] == "ok"
    finally:
        for f in floods:
            f.kill()
            f.wait(timeout=30)
        proc.terminate()
        proc.wait(timeout=30)
    ms = np.concatenate([np.asarray(x) for x in lats]) * 1e3
    return {"answered": [len(x) for x in lats], "ms": ms, "sizes": sizes, "sent": sent,
            "alive": alive, "p50": float(np.percentile(ms, 50)),
            "p95": float(np.percentile(ms, 95)), "max": float(ms.max())}


def report(tag: str, r: dict) -> str:
    return (f"{tag}: round trip p50 {r['p50']:.1f} ms, p95 {r['p95']:.1f} ms, max "
            f"{r['max']:.1f} ms over {r['ms'].size} replies; flood messages of "
            f"{r['sizes']} bytes, sent {r['sent']}; load {os.getloadavg()[0]:.2f}")


# The bound. Without the fix this test gave p95 6,440 ms (p50 4,951 ms): protocol.parse of
# every 1.4 MB flood message ran on the event loop, and every well-behaved reply waited behind
# it (the issue reported 6.8 s). With the fix: p95 73 ms and 219 ms in two runs at load
# average 8-11 on 2 cores (server, parser, two flooders and the sessions compete for them);
# without the flood, at the same load, p95 5 ms. The assertion allows 1,000 ms: a margin of
# 4x over the worst run with the fix on a saturated machine, and 6x below the defect. Every
# reply must arrive. The real-time figure on an unloaded machine is the benchmark's
# (benchmarks/bench_online.py, "real-time sessions while one client floods").
P95_BOUND_MS = 1000.0


@pytest.mark.parametrize("serve_args", [(), ("--workers", "0")], ids=["model-threads",
                                                                      "model-on-loop"])
def test_one_flooding_client_does_not_stall_real_time_sessions(serve_args: tuple[str, ...]
                                                               ) -> None:
    r = flood_run(sessions=3, frames=100, flooders=["nosession", "session"],
                  serve_args=serve_args)
    print(report("flood test", r))
    assert r["alive"] and r["answered"] == [100] * 3, r["answered"]
    assert r["p95"] < P95_BOUND_MS, report("flood test", r)


@pytest.mark.slow
def test_flood_slow_variant() -> None:
    """20 s, 6 paced sessions, two flooders without a session and two with one."""
    r = flood_run(sessions=6, frames=500, flooders=["nosession", "nosession", "session",
                                                    "session"])
    print(report("slow flood test", r))
    assert r["alive"] and r["answered"] == [500] * 6, r["answered"]
    assert r["p95"] < P95_BOUND_MS, report("slow flood test", r)

"""regnn serve: round trip, malformed messages, session isolation, health, CLI."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from regnn.online import protocol
from regnn.online.client import ReactionClient, ServerError, health
from regnn.online.server import ReactionServer, ServerThread
from regnn.online.stream import ToyStream

SR = 16_000
HOP = SR // 25


def toy_factory(k: int, seed: int, sigma: float | None) -> ToyStream:
    return ToyStream(k=k, seed=seed)


def speaker(seed: int, n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    face = rng.random((n, 25)).astype(np.float32)
    audio = (0.2 * rng.standard_normal(n * HOP)).astype(np.float32)
    # what the server decodes from pcm_s16le and from 5-decimal JSON numbers
    audio = np.round(audio * 32768) / 32768
    return np.round(face, 5), audio.astype(np.float32)


def reference(face: np.ndarray, audio: np.ndarray, k: int, seed: int, step: int) -> np.ndarray:
    s = ToyStream(k=k, seed=seed)
    outs = [s.push(face[i:i + step], audio[i * HOP:(i + step) * HOP], SR)
            for i in range(0, len(face), step)]
    return np.concatenate(outs, axis=1)


@pytest.fixture(scope="module", params=[2, 0], ids=["model-threads", "model-on-loop"])
def url(request: pytest.FixtureRequest):
    """A toy server whose model runs in 2 threads, or on its event loop (``workers=0``)."""
    server = ReactionServer(toy_factory, "127.0.0.1", 0, max_sessions=6, model_name="toy",
                            workers=request.param)
    with ServerThread(server) as u:
        yield u


def run_session(url: str, face: np.ndarray, audio: np.ndarray, k: int, seed: int, step: int,
                encoding: str = "pcm_s16le") -> np.ndarray:
    with ReactionClient(url) as c:
        info = c.start(k=k, seed=seed)
        assert info["k"] == k and info["fps"] == 25 and len(info["attributes"]) == 25
        outs = [c.send(face[i:i + step], audio[i * HOP:(i + step) * HOP], SR, encoding)
                for i in range(0, len(face), step)]
        ended = c.end()
    out = np.concatenate(outs, axis=1)
    assert ended == {"type": "ended", "frames_in": len(face), "frames_out": out.shape[1]}
    return out


@pytest.mark.parametrize("encoding", ["pcm_s16le", "f32le", "float"])
def test_round_trip_matches_the_stream(url: str, encoding: str) -> None:
    face, audio = speaker(1)
    out = run_session(url, face, audio, k=3, seed=5, step=1, encoding=encoding)
    assert out.shape == (3, len(face), 25)
    np.testing.assert_allclose(out, reference(face, audio, 3, 5, 1), atol=1e-4)
    assert not np.allclose(out[0], out[1])  # K different reactions


def test_frames_wait_for_their_audio(url: str) -> None:
    face, audio = speaker(2, 16)
    with ReactionClient(url) as c:
        c.start(k=1)
        assert c.send(face[:4]).shape == (1, 0, 25)  # no audio yet: nothing to release
        out = c.send(face[4:8], audio[:8 * HOP], SR)
        assert out.shape == (1, 8, 25)
        first = c.request({"type": "frames", "face": face[8].tolist(),
                           "audio": protocol.encode_audio(audio[8 * HOP:9 * HOP], SR)})
        assert first["start"] == 8 and first["frames_in"] == 9


BAD = [
    ("{oops", "bad-json", "not valid JSON"),
    ("[1, 2]", "bad-message", "JSON object"),
    ('{"type": "dance"}', "bad-message", "unknown message type 'dance'"),
    ('{"type": "frames"}', "bad-face", "needs 'face'"),
    ('{"type": "frames", "face": [[0.1, 0.2]]}', "bad-face", "frame 0 must be a list of 25"),
    ('{"type": "frames", "face": [[0.1, "x", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,'
     ' 0, 0, 0, 0, 0, 0]]}', "bad-face", "attribute 1 (AU2) is not a number"),
    (json.dumps({"type": "frames", "face": [[0.0] * 25] * 251}), "bad-face", "at most 250"),
    (json.dumps({"type": "frames", "face": [[0.0] * 25],
                 "audio": {"sample_rate": SR, "encoding": "pcm_s16le", "data": "%%%"}}),
     "bad-audio", "not valid base64"),
    (json.dumps({"type": "frames", "face": [[0.0] * 25],
                 "audio": {"sample_rate": SR, "encoding": "pcm_s16le",
                           "data": base64.b64encode(b"abc").decode()}}),
     "bad-audio", "not a multiple of 2"),
    (json.dumps({"type": "frames", "face": [[0.0] * 25],
                 "audio": {"sample_rate": 0, "data": ""}}), "bad-audio", "sample_rate"),
    (json.dumps({"type": "frames", "face": [[0.0] * 25],
                 "audio": {"sample_rate": SR, "encoding": "mp3", "data": ""}}),
     "bad-audio", "'audio.encoding' must be one of"),
    (json.dumps({"type": "frames", "face": [[0.0] * 25],
                 "audio": {"sample_rate": SR, "encoding": "float", "data": ["a"]}}),
     "bad-audio", "list of numbers"),
    ('{"type": "start", "k": 2}', "already-started", "already started"),
    ('{"type": "frames", "seq": true, "face": [0]}', "bad-message", "'seq'"),
]


def test_malformed_messages_get_clear_errors_and_leave_the_session_intact(url: str) -> None:
    face, audio = speaker(3, 24)
    with ReactionClient(url) as c:
        c.start(k=2, seed=9)
        outs = [c.send(face[:8], audio[:8 * HOP], SR)]
        for raw, code, text in BAD:
            reply = c.request(raw)
            assert reply["type"] == "error", raw
            assert reply["code"] == code, (raw, reply)
            assert text in reply["message"], (raw, reply)
        nan_face = face[8:9].copy()
        nan_face[0, 3] = np.nan
        reply = c.request(protocol.frames_message(nan_face, seq=41).replace("NaN", "NaN"))
        assert reply["code"] == "bad-face" and reply["seq"] == 41
        c._ws.send(b"\x00\x01")  # binary message
        reply = json.loads(c._ws.recv(timeout=10))
        assert reply["code"] == "bad-message" and "binary" in reply["message"]
        with pytest.raises(ServerError) as err:  # face 300 frames ahead of the audio
            c.send(np.zeros((250, 25), np.float32))
            c.send(np.zeros((60, 25), np.float32))
        assert err.value.code == "rejected" and "ahead of the audio" in str(err.value)
    # after all that the session gave what a clean one gives for its accepted frames
    with ReactionClient(url) as c:
        c.start(k=2, seed=9)
        clean = [c.send(face[:8], audio[:8 * HOP], SR)]
    np.testing.assert_array_equal(outs[0], clean[0])


def test_frames_before_start_and_session_limit() -> None:
    server = ReactionServer(toy_factory, "127.0.0.1", 0, max_sessions=1)
    with ServerThread(server) as u, ReactionClient(u) as a, ReactionClient(u) as b:
        reply = a.request({"type": "frames", "seq": 3, "face": [0.0] * 25})
        assert reply == {"type": "error", "code": "no-session", "seq": 3,
                         "message": "send a 'start' message before 'frames'"}
        a.start()
        with pytest.raises(ServerError) as err:
            b.start()
        assert err.value.code == "busy" and "limit of 1" in str(err.value)
        assert health(u)["sessions"] == 1
        a.end()
        b.start()  # the slot is free again


def test_concurrent_sessions_are_isolated(url: str) -> None:
    n = 5
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    data = {i: speaker(100 + i, 40) for i in range(n)}

    def session(i: int) -> None:
        try:
            face, audio = data[i]
            results[i] = run_session(url, face, audio, k=1 + i % 3, seed=i, step=1 + i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for i in range(n):
        face, audio = data[i]
        np.testing.assert_allclose(results[i], reference(face, audio, 1 + i % 3, i, 1), atol=1e-4)


def test_health_and_unknown_paths(url: str) -> None:
    h = health(url)
    assert h["status"] == "ok" and h["model"] == "toy" and h["protocol"] == 1
    assert h["max_sessions"] == 6 and h["fps"] == 25
    http = url.replace("ws://", "http://")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{http}/nope", timeout=5)
    assert err.value.code == 404


def _serve(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    return subprocess.Popen([sys.executable, "-m", "regnn.cli", "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_cli_serve_toy_round_trip() -> None:
    proc = _serve(["--toy", "--port", "0"])
    try:
        line = proc.stdout.readline()
        assert line.startswith("regnn serve: toy on ws://127.0.0.1:"), line
        u = line.split(" on ", 1)[1].split()[0]
        assert health(u)["model"] == "toy"
        face, audio = speaker(4, 16)
        out = run_session(u, face, audio, k=2, seed=1, step=4)
        np.testing.assert_allclose(out, reference(face, audio, 2, 1, 4), atol=1e-4)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_cli_serve_needs_a_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from regnn.cli import main

    assert main(["serve"]) == 2
    assert "give --run RUN" in capsys.readouterr().err
    assert main(["serve", "--run", str(tmp_path)]) == 2
    assert "is not a training run" in capsys.readouterr().err
    assert main(["serve", "--toy", "--workers", "-1"]) == 2
    assert "--workers must be >= 0, got -1" in capsys.readouterr().err
    assert main(["serve", "--toy", "--batch-wait", "-1"]) == 2
    assert "--batch-wait must be in [0, 1000] ms, got -1" in capsys.readouterr().err
    assert main(["serve", "--toy", "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


def test_stream_factory_refusals_are_reported_and_free_the_slot() -> None:
    from regnn.errors import ConfigError

    def factory(k: int, seed: int, sigma: float | None) -> ToyStream:
        if sigma is not None and sigma > 2:
            raise ConfigError(f"sigma {sigma} is too large for this model")
        return ToyStream(k=k, seed=seed)

    server = ReactionServer(factory, "127.0.0.1", 0, max_sessions=1)
    with ServerThread(server) as u, ReactionClient(u) as c:
        with pytest.raises(ServerError) as err:
            c.start(sigma=5.0)
        assert err.value.code == "bad-message" and "sigma 5.0 is too large" in str(err.value)
        assert health(u)["sessions"] == 0
        assert c.start(sigma=1.0)["k"] == 1


def test_binary_frames_give_the_json_answer_exactly(url: str) -> None:
    """The compact binary format: same reactions as JSON (float32 both ways, so no 5-decimal
    rounding), seq echoed, the header fields checked with precise errors."""
    face, audio = speaker(5, 24)
    want = reference(face, audio, 3, 4, 8)
    for encoding in ("pcm_s16le", "f32le"):
        with ReactionClient(url) as c:
            c.start(k=3, seed=4)
            got = np.concatenate([c.send(face[i:i + 8], audio[i * HOP:(i + 8) * HOP], SR,
                                         encoding, binary=True) for i in range(0, 24, 8)], 1)
        np.testing.assert_allclose(got, want, atol=2e-6)
    with ReactionClient(url) as c:
        c.start(k=2, seed=1)
        c._ws.send(protocol.frames_binary(face[:4], audio[:4 * HOP], SR, seq=77))
        reply = protocol.decode_reaction(c._ws.recv(timeout=10))
        assert reply["seq"] == 77 and reply["start"] == 0 and reply["frames_in"] == 4
        assert reply["frames"].shape == (2, 4, 25)
        good = protocol.frames_binary(face[4:6], None, seq=5)
        bad = [
            (b"RGX1" + good[4:], "bad-message", "starting with b'RGF1'"),
            (good[:30], "bad-face", "announces 2 frames"),
            (protocol.FRAMES_HEADER.pack(b"RGF1", 5, 0, 0, 0, 0), "bad-face", "0 face frames"),
            (good + b"\x00\x00", "bad-audio", "without audio"),
            (protocol.FRAMES_HEADER.pack(b"RGF1", 5, 2, 7, 1, SR) + good[20:], "bad-audio",
             "audio encoding 7"),
            (protocol.FRAMES_HEADER.pack(b"RGF1", 5, 2, 1, 1, SR) + good[20:] + b"\x01",
             "bad-audio", "not a multiple of 2"),
            (protocol.FRAMES_HEADER.pack(b"RGF1", 5, 2, 1, 9, SR) + good[20:], "bad-audio",
             "'audio.channels'"),
        ]
        nan = np.array(face[4:6])
        nan[1, 2] = np.inf
        bad.append((protocol.frames_binary(nan, None, seq=5), "bad-face",
                    "face frame 1, attribute 2"))
        for raw, code, text in bad:
            c._ws.send(raw)
            reply = json.loads(c._ws.recv(timeout=10))
            assert reply["code"] == code and text in reply["message"], (raw[:24], reply)
        assert c.send(face[4:8], audio[4 * HOP:8 * HOP], SR, binary=True).shape == (2, 4, 25)
    timing = health(url)["timing_ms"]
    assert set(timing) == {"parse", "queue", "model", "encode", "send"}
    assert all(v is not None and v >= 0 for v in timing.values())


@pytest.mark.parametrize("compression", [False, True])
def test_permessage_deflate_only_when_asked(compression: bool) -> None:
    """Compression is off by default (it cost CPU per message under load) and negotiated when
    the server is started with it; sessions work either way."""
    from websockets.sync.client import connect

    server = ReactionServer(toy_factory, "127.0.0.1", 0, compression=compression)
    face, audio = speaker(5, 8)
    with ServerThread(server) as u:
        with connect(u) as ws:  # offers permessage-deflate, as browsers do
            response = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
            assert ("permessage-deflate" in response) is compression
        np.testing.assert_allclose(run_session(u, face, audio, k=2, seed=1, step=4),
                                   reference(face, audio, k=2, seed=1, step=4), atol=1e-4)


def test_cli_serve_processes_share_the_port_and_stop_together() -> None:
    """--processes 2: both processes answer on one port (the kernel spreads connections),
    sessions work, and SIGTERM to the parent stops the children (the port goes quiet)."""
    import time

    proc = _serve(["--toy", "--port", "0", "--processes", "2", "--log-level", "ERROR"])
    try:
        line = proc.stdout.readline()
        assert line.startswith("regnn serve: toy on ws://127.0.0.1:") and "2 processes" in line
        u = line.split(" on ", 1)[1].split()[0]
        seen = {(h["process"], h["processes"]) for h in (health(u) for _ in range(40))}
        assert seen == {(1, 2), (2, 2)}  # 40 connections, both processes
        face, audio = speaker(6, 16)
        for seed in (1, 2, 3):
            out = run_session(u, face, audio, k=2, seed=seed, step=4)
            np.testing.assert_allclose(out, reference(face, audio, 2, seed, 4), atol=1e-4)
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0
    deadline = time.monotonic() + 20
    while True:  # no child left listening
        try:
            health(u)
        except (OSError, urllib.error.URLError):
            break
        assert time.monotonic() < deadline, "a server process still answers"
        time.sleep(0.5)


def test_cli_serve_processes_report_a_child_that_cannot_start(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture
                                                              ) -> None:
    from regnn.cli import main

    assert main(["serve", "--toy", "--processes", "0"]) == 2
    assert "--processes must be >= 1" in capsys.readouterr().err
    # the children load the run: a folder that is not one is reported by the parent
    assert main(["serve", "--run", str(tmp_path), "--port", "0", "--processes", "2"]) == 2
    err = capsys.readouterr().err
    assert "server process" in err and "is not a training run" in err


@pytest.mark.parametrize("wait, max_frames, batches", [(0.2, 128, 1), (0.0, 128, 3),
                                                       (0.2, 2, 2)])
def test_on_loop_batches_gather_the_chunks_due_within_the_wait(wait: float, max_frames: int,
                                                               batches: int) -> None:
    """--workers 0: a push with a chunk due waits ``wait`` seconds for others (one batch for
    three sessions 10 ms apart), none without a wait, and a batch that reaches ``max_frames``
    speaker frames runs at once; pushes without a chunk due never wait for a batch."""
    import asyncio
    import concurrent.futures

    from regnn.online.batching import Batcher

    face, audio = speaker(0, 8)

    async def run() -> tuple[Batcher, list[np.ndarray], float]:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            batcher = Batcher(pool, 1, max_frames=max_frames, on_loop=True, wait=wait)
            streams = [ToyStream(k=2, seed=i) for i in range(3)]

            async def first_frame(i: int) -> np.ndarray:
                await asyncio.sleep(0.01 * i)
                out, _, _ = await batcher.push(streams[i], face[:1], audio[:HOP], SR)
                return out

            outs = await asyncio.gather(*(first_frame(i) for i in range(3)))
            t = time.perf_counter()
            out, _, _ = await batcher.push(streams[0], face[1:2], audio[HOP:2 * HOP], SR)
            return batcher, [*outs, out], time.perf_counter() - t

    batcher, outs, no_chunk_s = asyncio.run(run())
    assert batcher.batches == batches and batcher.messages == 3 and batcher.inline == 1
    assert no_chunk_s < wait / 2 or wait == 0  # frame 1 was computed with frame 0's chunk
    for i, out in enumerate(outs[:3]):  # each session its own frames, as pushed alone
        np.testing.assert_allclose(out, ToyStream(k=2, seed=i).push(face[:1], audio[:HOP], SR))
    np.testing.assert_allclose(outs[3], reference(face[:2], audio[:2 * HOP], 2, 0, 1)[:, 1:])

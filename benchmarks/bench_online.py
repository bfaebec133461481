"""Online generation: per-chunk latency and concurrent real-time sessions of one server.

    python benchmarks/bench_online.py --run RUN            # an online run (regnn train --online)
    python benchmarks/bench_online.py                      # untrained demo-size online model

1. **Latency** (in process, 1 torch thread): a 750-frame speaker clip pushed frame by frame
   into ``open_stream(model, k)`` for K = 1 and K = 10; prints the per-chunk cost
   (median, p99) and the per-frame cost (total / frames). Target: median per-frame cost
   < 5 ms for K = 1 (the real-time budget at 25 fps is 40 ms).
2. **Load** (loopback only, 127.0.0.1): starts ``regnn serve`` as a separate process and, for
   each N in ``--sessions``, runs N concurrent simulated speakers for ``--seconds`` seconds:
   each sends one frame (25 attributes + 40 ms of 16 kHz int16 audio) every 40 ms on a fixed
   clock, without waiting for replies, and times each reply. Session starts are spread over
   ``--stagger`` frames (default 8 = one hop; 0 = all sessions compute their chunks on the
   same frame, the worst case). A session is *real time* when
   every frame was answered and its p95 round trip is within one frame period (40 ms).
   Prints, per N, the round-trip p50 / p95 / p99 over all frames, the slowest session's p95
   and how many sessions were real time; then the largest N at which all were. Target: >= 8.
3. **Flood** (loopback): the same server, ``--flood-sessions`` paced sessions for
   ``--seconds`` seconds, first alone, then while one client (a separate process) sends
   1.4 MB ``frames`` messages (250 frames, 10 s of 16 kHz audio as a JSON float list) as fast
   as it can, without a session (``--flood-mode nosession``, the server closes it after each
   and it reconnects) or in a started session (``session``). Prints both rows: one client must
   not push the others out of real time. Before the server parsed large messages off its
   event loop, this flood pushed the round trip to seconds.

Bounded: at most ``len(--sessions)`` levels of ``--seconds`` (<= 60) each, then the server is
stopped. Also prints ``os.getloadavg()`` before and after, so that figures measured on a busy
machine are recognisable.
"""

from __future__ import annotations

from regnn.mkl import apply_vendor_fix

apply_vendor_fix()  # an entry point: the MKL vendor fix before torch loads

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep
       + os.environ.get("PYTHONPATH", "")}
FPS = 25
SR = 16_000


def load(tag: str) -> str:
    return f"[{tag}] load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in
                                                               os.getloadavg())


def speaker_clip(frames: int = 750, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None]
    face = (0.5 + 0.4 * np.sin(t / 11.0 + rng.uniform(0, 6, 25))).astype(np.float32)
    s = np.arange(frames * SR // FPS) / SR
    audio = (0.2 * np.sin(2 * np.pi * 190 * s) * (1 + np.sin(2 * np.pi * 0.4 * s))
             + 0.02 * rng.standard_normal(s.size)).astype(np.float32)
    return face, audio


def make_model(run: str | None):  # noqa: ANN201
    """``(factory(k, seed) -> stream, description)``."""
    if run:
        from regnn.commands.serve import make_factory

        factory, name = make_factory(run, False)
        return (lambda k, seed: factory(k, seed, None)), name
    import torch

    from regnn.config import load_config, merge
    from regnn.online.model import OnlineREGNN, online_overrides

    torch.manual_seed(0)
    cfg = merge(load_config("demo"), online_overrides())
    model = OnlineREGNN(cfg.model).eval()
    return (lambda k, seed: model.stream(k, seed)), "UNTRAINED demo-size online REGNN"


def bench_latency(factory, ks: list[int], frames: int) -> None:  # noqa: ANN001
    face, audio = speaker_clip(frames)
    per = SR // FPS
    for k in ks:
        stream = factory(k, 0)
        stream.push(face[:1], audio[:per], SR)  # first call: lazy initialisation
        stream = factory(k, 0)
        times = np.empty(frames)
        for i in range(frames):
            t = time.perf_counter()
            stream.push(face[i], audio[i * per:(i + 1) * per], SR)
            times[i] = time.perf_counter() - t
        hop = getattr(stream, "hop", 1)
        chunk = times[::hop] * 1e3  # the pushes that generated a chunk
        print(f"K={k:<3d} hop {hop}: per chunk median {np.median(chunk):7.2f} ms, "
              f"p99 {np.percentile(chunk, 99):7.2f} ms | per frame (total/frames) "
              f"{times.sum() / frames * 1e3:6.2f} ms, other pushes median "
              f"{np.median(np.delete(times, np.s_[::hop])) * 1e3:.3f} ms | "
              f"{frames / times.sum():7.1f} frames/s = {frames / times.sum() / FPS:5.1f}x "
              "real time", flush=True)


async def one_session(url: str, seconds: float, k: int, seed: int, start_at: float,
                      face: np.ndarray, audio: np.ndarray, binary: bool = False) -> dict:
    from websockets.asyncio.client import connect

    from regnn.online.protocol import decode_reaction, frames_binary, frames_message

    per = SR // FPS
    n = int(seconds * FPS)
    sent: dict[int, float] = {}
    lat: list[float] = []
    async with connect(url, max_size=2**24) as ws:
        await ws.send(json.dumps({"type": "start", "k": k, "seed": seed}))
        reply = json.loads(await ws.recv())
        if reply.get("type") != "started":
            return {"error": reply, "latencies": [], "frames": n, "answered": 0}

        async def receive() -> None:
            while len(lat) < n:
                raw = await ws.recv()
                msg = decode_reaction(raw) if isinstance(raw, bytes) else json.loads(raw)
                if msg.get("type") != "reaction":
                    raise RuntimeError(f"server error: {msg}")
                lat.append(time.perf_counter() - sent[msg["seq"]])

        rx = asyncio.create_task(receive())
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        t0 = time.perf_counter()
        for i in range(n):
            await asyncio.sleep(max(0.0, t0 + i / FPS - time.perf_counter()))
            j = i % len(face)
            msg = (frames_binary if binary else frames_message)(
                face[j], audio[j * per:(j + 1) * per], SR, seq=i)
            sent[i] = time.perf_counter()
            await ws.send(msg)
        try:
            await asyncio.wait_for(rx, timeout=5.0)
        except TimeoutError:
            rx.cancel()
        await ws.send(json.dumps({"type": "end"}))
    return {"latencies": lat, "frames": n, "answered": len(lat)}


async def load_level(url: str, n: int, seconds: float, k: int, stagger: int = 8,
                     binary: bool = False) -> list[dict]:
    """N sessions whose starts are spread evenly over ``stagger`` frame periods (speakers do
    not all start on the same frame; with 0 every session computes its chunk on the same
    frame, the worst case)."""
    clips = [speaker_clip(750, seed=s) for s in range(min(n, 4))]
    start_at = time.perf_counter() + 1.0
    tasks = [one_session(url, seconds, k, s, start_at + s * stagger / (FPS * n),
                         *clips[s % len(clips)], binary) for s in range(n)]
    return await asyncio.gather(*tasks)


def start_server(run: str | None, workers: int | None, max_sessions: int,
                 compression: bool = False,
                 processes: int = 1) -> tuple[subprocess.Popen, str]:
    """``regnn serve`` on loopback in its own process; returns it and its URL."""
    cmd = [sys.executable, "-m", "regnn.cli", "serve", "--host", "127.0.0.1", "--port", "0",
           "--threads", "1", "--max-sessions", str(max_sessions),
           "--max-connections", str(max_sessions + 8), "--log-level", "ERROR"]
    cmd += ["--run", run] if run else ["--toy"]
    cmd += ["--workers", str(workers)] if workers is not None else []
    cmd += ["--compression"] if compression else []
    cmd += ["--processes", str(processes)] if processes > 1 else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=ENV)
    line = proc.stdout.readline()
    if " on ws://" not in line:
        proc.terminate()
        raise SystemExit(f"server did not start: {line!r}")
    print(f"server: {line.strip()}")
    return proc, line.split(" on ", 1)[1].split()[0]


def level_row(res: list[dict], n: int, seconds: float, k: int, tag: str = "") -> bool:
    """Print one load level; returns whether every session was real time."""
    lat = np.concatenate([np.asarray(r["latencies"]) for r in res]) * 1e3
    p95s = [np.percentile(r["latencies"], 95) * 1e3 if r["latencies"] else np.inf
            for r in res]
    ok = [r["answered"] == r["frames"] and p < 1000 / FPS for r, p in zip(res, p95s)]
    print(f"{tag}N={n:<3d} sessions x {seconds:g} s, K={k}: round trip p50 "
          f"{np.percentile(lat, 50):7.2f} ms, p95 {np.percentile(lat, 95):7.2f} ms, "
          f"p99 {np.percentile(lat, 99):7.2f} ms | worst session p95 {max(p95s):7.2f} ms"
          f" | answered {sum(r['answered'] for r in res)}/"
          f"{sum(r['frames'] for r in res)} | real-time sessions {sum(ok)}/{n}  "
          f"({load('now')})", flush=True)
    return all(ok)


def timing_row(before: dict, after: dict) -> str:
    """Where the server's time per answered ``frames`` message went during one level (the
    deltas of ``/health``'s totals): parse, wait for a model worker, model, encode, send."""
    n = after["timing_messages"] - before["timing_messages"]
    if n <= 0:
        return "  server time per message: no messages"
    parts = [f"{k} {(after['timing_total_s'][k] - before['timing_total_s'][k]) / n * 1e3:.3f}"
             for k in after["timing_total_s"]]
    return f"  server time per message (ms, {n} messages): " + ", ".join(parts)


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (Linux ``/proc``; empty elsewhere)."""
    kids: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (Linux ``/proc``; NaN elsewhere)."""
    if not Path("/proc/self/stat").exists():
        return float("nan")
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process has exited
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def bench_load(run: str | None, levels: list[int], seconds: float, k: int,
               workers: int | None, stagger: int = 8, binary: bool = False,
               compression: bool = False, processes: int = 1) -> None:
    from regnn.online.client import health

    proc, url = start_server(run, workers, max(levels), compression, processes)
    try:
        asyncio.run(load_level(url, 2, 2.0, k, binary=binary))  # untimed warm-up
        print(f"session starts spread over {stagger} frame periods ({stagger * 40} ms); "
              f"messages {'binary' if binary else 'JSON'}")
        best = 0
        servers = process_tree(proc.pid)
        for n in levels:
            before = health(url)
            cpu0, own0, wall = cpu_seconds(servers), time.process_time(), time.perf_counter()
            res = asyncio.run(load_level(url, n, seconds, k, stagger, binary))
            cpu, own = cpu_seconds(servers) - cpu0, time.process_time() - own0
            wall = time.perf_counter() - wall
            if level_row(res, n, seconds, k):
                best = n
            print(timing_row(before, health(url)), flush=True)
            sent = sum(r["frames"] for r in res)
            print(f"  CPU per message (ms): server processes {cpu / sent * 1e3:.3f}, load "
                  f"generator {own / sent * 1e3:.3f} | cores busy over the level's {wall:.1f} s: "
                  f"server {cpu / wall:.2f}, generator {own / wall:.2f} (of {os.cpu_count()})",
                  flush=True)
        print(f"largest N with every session in real time: {best} (target >= 128)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


#: One flooding client (run as its own process): 250 frames with 10 s of 16 kHz audio as a
#: JSON float list (~1.4 MB), sent as fast as the connection takes them, replies drained.
FLOODER = """
import json, sys, threading, time
import numpy as np
from websockets.sync.client import connect
url, mode, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
rng = np.random.default_rng(0)
big = json.dumps({"type": "frames", "face": np.round(rng.random((250, 25)), 4).tolist(),
                  "audio": {"sample_rate": 16000, "encoding": "float",
                            "data": np.round(0.1 * rng.standard_normal(160000), 4).tolist()}})
print(len(big), flush=True)
sent, end = 0, time.monotonic() + seconds
def drain(ws):
    try:
        while True:
            ws.recv()
    except Exception:
        pass
while time.monotonic() < end:
    try:
        with connect(url, open_timeout=10, max_size=None) as ws:
            if mode == "session":
                ws.send('{"type": "start"}'); ws.recv(timeout=10)
            threading.Thread(target=drain, args=(ws,), daemon=True).start()
            while time.monotonic() < end:
                ws.send(big); sent += 1
    except Exception:
        time.sleep(0.01)  # closed by the server: reconnect
print(sent, flush=True)
"""


def bench_flood(run: str | None, n: int, seconds: float, k: int, workers: int | None,
                mode: str) -> None:
    proc, url = start_server(run, workers, n + 1)
    flood = None
    try:
        asyncio.run(load_level(url, 2, 2.0, k))  # untimed warm-up
        level_row(asyncio.run(load_level(url, n, seconds, k)), n, seconds, k,
                  "no flood:                                   ")
        flood = subprocess.Popen([sys.executable, "-c", FLOODER, url, mode, str(seconds + 3)],
                                 stdout=subprocess.PIPE, text=True, env=ENV)
        size = int(flood.stdout.readline())
        res = asyncio.run(load_level(url, n, seconds, k))
        sent = int(flood.stdout.readline() or 0)
        level_row(res, n, seconds, k, "real-time sessions while one client floods: ")
        print(f"  the flooder ({mode}): {sent} messages of {size:,} bytes in {seconds + 3:g} s")
    finally:
        if flood is not None:
            flood.kill()
            flood.wait(timeout=30)
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", help="online run folder (default: untrained demo-size model)")
    ap.add_argument("--frames", type=int, default=750, help="frames per latency clip")
    ap.add_argument("--ks", default="1,10", help="K values for the latency part")
    ap.add_argument("--sessions", default="1,4,8,12,16", help="load levels (concurrent N)")
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each load level")
    ap.add_argument("--load-k", type=int, default=1, help="K of each simulated session")
    ap.add_argument("--workers", type=int, default=None,
                    help="server model threads (regnn serve --workers; default: serve's, 2 "
                         "for one process, 0 = the model on the event loop with --processes)")
    ap.add_argument("--stagger", type=int, default=8,
                    help="spread session starts over this many frames (0: all on one frame)")
    ap.add_argument("--flood-sessions", type=int, default=4,
                    help="paced sessions measured while one client floods (0: skip)")
    ap.add_argument("--flood-mode", choices=("nosession", "session"), default="nosession",
                    help="the flooder sends without a session, or in a started one")
    ap.add_argument("--binary", action="store_true",
                    help="load sessions send binary frames and get binary reactions "
                         "(docs/online.md) instead of JSON")
    ap.add_argument("--compression", action="store_true",
                    help="the server offers permessage-deflate (regnn serve --compression)")
    ap.add_argument("--processes", type=int, default=1,
                    help="server processes sharing the port (regnn serve --processes); the "
                         "per-stage times then come from one of them")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()
    if not 0 < args.seconds <= 60:
        raise SystemExit("--seconds must be in (0, 60]")
    levels = [int(x) for x in args.sessions.split(",")]
    if len(levels) > 10 or max(levels) > 256:
        raise SystemExit("at most 10 load levels of at most 256 sessions")

    import torch

    torch.set_num_threads(1)
    print(load("start"))
    print(f"torch {torch.__version__}, 1 intra-op thread; cores: {os.cpu_count()}")
    if not args.skip_latency:
        factory, name = make_model(args.run)
        print(f"latency: {name}")
        bench_latency(factory, [int(x) for x in args.ks.split(",")], args.frames)
    if not args.skip_load:
        bench_load(args.run, levels, args.seconds, args.load_k, args.workers, args.stagger,
                   args.binary, args.compression, args.processes)
    if not args.skip_load and args.flood_sessions > 0:
        if args.flood_sessions > 64:
            raise SystemExit("at most 64 flood sessions")
        bench_flood(args.run, args.flood_sessions, args.seconds, args.load_k, args.workers,
                    args.flood_mode)
    print(load("end"))


if __name__ == "__main__":
    main()

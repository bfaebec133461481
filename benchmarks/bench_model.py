"""Speed of the REGNN model at the authors' configuration (prints its figures).

* generation: K = 10 reactions for one 30-s clip (750 frames, 29 windows of D = 50, stride 25),
  perceptual + cognitive once, 10 samples decoded by the motor inverse; target < 0.1 s
  (the authors' published code: 1.1 s on the same 2 cores);
* training: D = 50, P = 8, 2 motor layers, 128-wide fusion, batches of 128 windows with
  M = 10 appropriate reactions each (forward, backward, Adam step, batch assembly included);
  target >= 455 windows/s (5x the authors' 91 windows/s without anomaly detection, 57 with).

    python benchmarks/bench_model.py [--threads N ...] [--processes N ...] [--rounds R]
                                     [--run RUN] [--repeats R] [--steps S] [--no-generation]
                                     [--against TREE]

``--against TREE`` measures another checkout (e.g. a git worktree of ``main``) alternately with
this one in fresh processes and prints both and their ratio; peak memory (RSS) is printed after
generation and after training.

Random weights by default (the work per call does not depend on training except for the
number of fixed-point iterations, which is printed); ``--run`` times a trained model.
"""

from __future__ import annotations

from regnn import mkl

mkl.apply_vendor_fix()  # an entry point: the MKL vendor fix before torch loads

# isort: split

import argparse
import datetime
import os
import statistics
import sys
import time

import numpy as np
import torch

from regnn.config import load_config
from regnn.data.training import AppropriateWindows
from regnn.models.module import make_adam
from regnn.models.regnn import REGNN

BATCH = 128  # windows per optimiser step (the authors' batch)
# the configuration measured (--config); module-level so that the DDP workers see it
CONFIG_NAME = os.environ.get("REGNN_BENCH_CONFIG", "regnn")
CONFIG_GENERATE = load_config(CONFIG_NAME).generate
CLIP_WINDOWS = load_config(CONFIG_NAME).train.clip_windows


def bench_generation(model: REGNN, repeats: int) -> dict:
    model.eval()
    rng = np.random.default_rng(0)
    face = torch.from_numpy(rng.uniform(0, 1, (1, 750, 25)).astype(np.float32))
    audio = torch.from_numpy(rng.normal(0, 1, (1, 750, 64)).astype(np.float32))
    times, iters = [], 0
    g = CONFIG_GENERATE
    for r in range(repeats + 2):
        t = time.perf_counter()
        pred, info = model.generate(face, audio, k=10, sigma=g.sigma, noise=g.noise,
                                    generator=torch.Generator().manual_seed(r),
                                    noise_scale=g.noise_scale)
        dt = time.perf_counter() - t
        if r >= 2:  # two warm-up calls
            times.append(dt)
            iters = max(iters, info.max_iterations)
    assert pred.shape == (1, 10, 750, 25)
    return {"median_s": statistics.median(times), "min_s": min(times),
            "max_iterations": iters, "max_residual": info.max_residual}


def _training_data(window: int, stride: int, clip_windows: int = 1) -> AppropriateWindows:
    n, T = 64, 750
    rng = np.random.default_rng(0)
    speakers = rng.uniform(0, 1, (n, T, 25)).astype(np.float32)
    audio = rng.normal(0, 1, (n, T, 64)).astype(np.float32)
    listeners = rng.uniform(0, 1, (n, T, 25)).astype(np.float32)
    neighbours = rng.uniform(size=(n, n)) < 0.3
    return AppropriateWindows(speakers, audio, listeners, neighbours, window, stride,
                              appropriate=10, clip_windows=clip_windows)


def bench_training(model: torch.nn.Module, steps: int, rank: int = 0, world: int = 1) -> dict:
    """Median time of a training step of ``model`` (a :class:`_LossModule`, DDP-wrapped when
    ``world`` > 1) on global batches of 128 windows, of which this process takes its share
    ``128 / world``."""
    model.train()
    cfg = getattr(model, "module", model).model.cfg
    ds = _training_data(cfg.window, cfg.stride, CLIP_WINDOWS)
    opt = make_adam(model.parameters(), lr=1e-4, weight_decay=5e-4)  # as regnn train
    order = np.random.default_rng(1).permutation(len(ds))
    # samples per step: windows, or chunks of clip_windows windows (as regnn train)
    per_step, share = BATCH // ds.chunk, BATCH // ds.chunk // world
    times = []
    for s in range(steps + 1):
        t = time.perf_counter()
        batch = ds.__getitems__(order[s * per_step + rank * share:
                                      s * per_step + (rank + 1) * share].tolist())
        out = model(batch)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        if s >= 1:
            times.append(time.perf_counter() - t)
    return {"windows_per_s": BATCH / statistics.median(times),
            "median_step_s": statistics.median(times)}


class _LossModule(torch.nn.Module):
    """REGNN whose forward is its training losses (what DDP wraps, as Lightning does)."""

    def __init__(self, model: REGNN) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model.losses(batch["face"], batch["audio"], batch["reactions"],
                                 batch["valid"], batch["group"])


def _ddp_worker(rank: int, world: int, port: int, steps: int, queue: object) -> None:
    """One data-parallel process: gloo, DDP, ``cpu_count / world`` threads (as Lightning)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=300))
    try:
        torch.manual_seed(0)
        model = DistributedDataParallel(_LossModule(REGNN(load_config(CONFIG_NAME).model)))
        result = bench_training(model, steps, rank, world)
        result["mkl_branch"] = mkl.mkl_branch()
        dist.barrier()
        if rank == 0:
            queue.put(result)  # type: ignore[attr-defined]
    finally:
        dist.destroy_process_group()


def bench_training_ddp(processes: int, steps: int) -> dict:
    """:func:`bench_training` over ``processes`` DDP processes (``regnn train --devices N
    --strategy ddp`` on CPU): each takes ``128 / N`` windows of every batch."""
    import socket

    import torch.multiprocessing as mp

    if BATCH % processes:
        raise SystemExit(f"--processes must divide the batch of {BATCH} windows")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    workers = mp.start_processes(_ddp_worker, args=(processes, port, steps, queue),
                                 nprocs=processes, join=False, start_method="spawn")
    deadline = time.monotonic() + 900
    while not workers.join(timeout=5):  # raises if a worker failed
        if time.monotonic() > deadline:
            for p in workers.processes:
                p.terminate()
            raise SystemExit("the DDP benchmark did not finish in 15 minutes")
    return queue.get()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="*", default=None,
                    help="torch thread counts to measure (default: 1 and torch's default)")
    ap.add_argument("--processes", type=int, nargs="*", default=None,
                    help="data-parallel (DDP, gloo) process counts to measure training with "
                         "(default: the number of CPUs when > 1; none to skip)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate the training measurements this many times and print "
                         "every round and the median (this machine's speed drifts by +-15%%)")
    ap.add_argument("--run", default=None,
                    help="time a trained run instead of random weights (not for --processes)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--no-generation", action="store_true", help="time training only")
    ap.add_argument("--config", default=None,
                    help="built-in configuration to measure: regnn (default), paper, authors "
                         "(sets REGNN_BENCH_CONFIG for the DDP workers too)")
    ap.add_argument("--against", default=None, metavar="TREE",
                    help="also measure the regnn of another checkout (e.g. a git worktree of "
                         "main: `git worktree add /tmp/main main`), alternating with this one "
                         "round by round in fresh processes, and print both and their ratio")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.against:
        raise SystemExit(compare_trees(args))
    if args.config and args.config != CONFIG_NAME:  # re-run with the config in the environment
        import subprocess

        env = {**os.environ, "REGNN_BENCH_CONFIG": args.config}
        argv = [a for a in sys.argv if a not in ("--config", args.config)]
        raise SystemExit(subprocess.call([sys.executable, *argv], env=env))
    default_threads = torch.get_num_threads()
    threads = args.threads or sorted({1, default_threads})
    cpus = os.cpu_count() or 1
    processes = args.processes if args.processes is not None else ([cpus] if cpus > 1 else [])
    torch.manual_seed(0)
    if args.run:
        from regnn.models.runs import load_module

        model = load_module(args.run).model
    else:
        model = REGNN(load_config(CONFIG_NAME).model)
    cfg = model.cfg
    n_params = sum(p.numel() for p in model.parameters())
    print(f"REGNN, configuration {CONFIG_NAME!r} (modes={cfg.modes}, "
          f"{cfg.distribution_loss} distribution loss, noise {CONFIG_GENERATE.noise}): "
          f"D={cfg.window} stride={cfg.stride} P={cfg.edge_channels} top_k={cfg.top_k} "
          f"motor layers={cfg.motor_layers} width={cfg.width} heads={cfg.heads} "
          f"parameters={n_params:,}")
    blas = mkl.status()
    print(f"MKL code branch {blas['mkl_branch']} (vendor fix: {blas['vendor_fix']}; "
          f"REGNN_MKL_VENDOR_FIX=0 turns it off)")
    result: dict[str, float] = {}
    if not args.no_generation:
        for th in threads:
            torch.set_num_threads(th)
            g = bench_generation(model, args.repeats)
            result[f"generation ms, {th} thread(s)"] = g["median_s"] * 1e3
            print(f"[threads={th}] generation, K=10 reactions for one 30-s clip: median "
                  f"{g['median_s'] * 1e3:.1f} ms (min {g['min_s'] * 1e3:.1f} ms; target < 100 "
                  f"ms; authors' code 1100 ms); motor inverse <= {g['max_iterations']} "
                  f"iterations/layer, max residual {g['max_residual']:.1e}")
        result["peak RSS MiB after generation"] = peak_rss_mib()
        print(f"peak memory (RSS) after generation: {result['peak RSS MiB after generation']:.0f}"
              " MiB (torch and the model included)")
    figures: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for th in threads:
            torch.set_num_threads(th)
            tr = bench_training(_LossModule(model), args.steps)
            figures.setdefault(f"1 process, {th} thread(s)", []).append(tr["windows_per_s"])
            print(f"[round {r + 1}, 1 process, threads={th}] training, batch {BATCH} windows x 10 "
                  f"reactions: {tr['windows_per_s']:.0f} windows/s "
                  f"({tr['median_step_s'] * 1e3:.0f} ms/step)", flush=True)
        for n in processes:
            tr = bench_training_ddp(n, args.steps)
            figures.setdefault(f"{n} DDP processes", []).append(tr["windows_per_s"])
            print(f"[round {r + 1}, {n} DDP processes x {max(1, cpus // n)} thread(s)] training, "
                  f"batch {BATCH} windows x 10 reactions ({BATCH // n} per process): "
                  f"{tr['windows_per_s']:.0f} windows/s ({tr['median_step_s'] * 1e3:.0f} ms/step, "
                  f"MKL branch {tr['mkl_branch']})",
                  flush=True)
    print("training, windows/s (median over rounds; target >= 455; authors' code 57, "
          "91 without anomaly detection):")
    for name, values in figures.items():
        print(f"  {name:24s} {statistics.median(values):5.0f}   rounds: "
              + " ".join(f"{v:.0f}" for v in values))
    if figures:
        result["peak RSS MiB after training"] = peak_rss_mib()
        print(f"peak memory (RSS) after training: {result['peak RSS MiB after training']:.0f} "
              "MiB (one process)")
    for name, values in figures.items():
        result[f"training windows/s, {name}"] = statistics.median(values)
    print(f"load average {os.getloadavg()} on {cpus} CPUs")
    if args.json:
        import json

        print("JSON " + json.dumps(result))


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def compare_trees(args: argparse.Namespace) -> int:
    """``--against TREE``: this checkout and TREE measured alternately, ``--rounds`` times,
    each round in a fresh process per tree (so neither benefits from the other's warm-up)."""
    import json
    import pathlib
    import subprocess

    here = pathlib.Path(__file__).resolve().parents[1]
    there = pathlib.Path(args.against).resolve()
    for tree in (here, there):
        if not (tree / "src" / "regnn").is_dir():
            raise SystemExit(f"{tree}: not a regnn checkout (no src/regnn)")
    child = [a for a in sys.argv[1:] if a not in ("--against", args.against)]
    if "--rounds" in child:
        i = child.index("--rounds")
        del child[i:i + 2]
    if "--processes" not in child:
        child += ["--processes"]  # one process: DDP figures need their own --processes
    trees = {"this checkout": here, f"against ({there.name})": there}
    # the same BLAS code on both sides: a checkout without the built MKL shim (e.g. a fresh
    # git worktree, never pip-installed) runs MKL's generic branch, up to ~1.7x slower
    probe = ("from regnn import mkl; mkl.apply_vendor_fix(); import torch; "
             "print(mkl.status()['mkl_branch'])")
    branches = {name: subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                     text=True, check=False,
                                     env={**os.environ, "PYTHONPATH": str(tree / "src")}
                                     ).stdout.strip() for name, tree in trees.items()}
    print("MKL branch: " + ", ".join(f"{n} {b}" for n, b in branches.items()), flush=True)
    if len(set(branches.values())) > 1:
        raise SystemExit("the two checkouts run different MKL code branches (is the MKL shim "
                         "built in both? `pip install -e .` builds it, or copy "
                         "src/regnn/_mkl_shim*.so), so their figures would not compare")
    figures: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    for r in range(args.rounds):
        for name, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": str(tree / "src")}
            out = subprocess.run([sys.executable, str(here / "benchmarks" / "bench_model.py"),
                                  *child, "--json"], env=env, capture_output=True, text=True,
                                 check=False)
            line = next((x for x in out.stdout.splitlines() if x.startswith("JSON ")), None)
            if out.returncode or line is None:
                sys.stderr.write(out.stdout + out.stderr)
                raise SystemExit(f"the benchmark failed in {tree}")
            for key, value in json.loads(line[5:]).items():
                figures[name].setdefault(key, []).append(value)
            print(f"[round {r + 1}] {name}: " + ", ".join(
                f"{k} {v:.1f}" for k, v in json.loads(line[5:]).items()), flush=True)
    a, b = trees
    print(f"medians over {args.rounds} alternated round(s) (ratio = this / against):")
    for key in figures[a]:
        va = statistics.median(figures[a][key])
        vb = statistics.median(figures[b].get(key, [float("nan")]))
        print(f"  {key:44s} {va:9.1f}  {vb:9.1f}  ratio {va / vb:5.2f}")
    print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    main()

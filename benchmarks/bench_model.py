"""Speed of the REGNN model at the authors' configuration (prints its figures).

* generation: K = 10 reactions for one 30-s clip (750 frames, 29 windows of D = 50, stride 25),
  perceptual + cognitive once, 10 samples decoded by the motor inverse; target < 0.1 s
  (the authors' published code: 1.1 s on the same 2 cores);
* training: D = 50, P = 8, 2 motor layers, 128-wide fusion, batches of 128 windows with
  M = 10 appropriate reactions each (forward, backward, Adam step, batch assembly included);
  target >= 455 windows/s (5x the authors' 91 windows/s without anomaly detection, 57 with).

    python benchmarks/bench_model.py [--threads N] [--run RUN] [--repeats R]

Random weights by default (the work per call does not depend on training except for the
number of fixed-point iterations, which is printed); ``--run`` times a trained model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from regnn.config import load_config
from regnn.data.training import AppropriateWindows
from regnn.models.module import make_adam
from regnn.models.regnn import REGNN


def bench_generation(model: REGNN, repeats: int) -> dict:
    model.eval()
    rng = np.random.default_rng(0)
    face = torch.from_numpy(rng.uniform(0, 1, (1, 750, 25)).astype(np.float32))
    audio = torch.from_numpy(rng.normal(0, 1, (1, 750, 64)).astype(np.float32))
    times, iters = [], 0
    for r in range(repeats + 2):
        t = time.perf_counter()
        pred, info = model.generate(face, audio, k=10, sigma=0.6,
                                    generator=torch.Generator().manual_seed(r))
        dt = time.perf_counter() - t
        if r >= 2:  # two warm-up calls
            times.append(dt)
            iters = max(iters, info.max_iterations)
    assert pred.shape == (1, 10, 750, 25)
    return {"median_s": statistics.median(times), "min_s": min(times),
            "max_iterations": iters, "max_residual": info.max_residual}


def bench_training(model: REGNN, steps: int) -> dict:
    model.train()
    n, T = 64, 750
    rng = np.random.default_rng(0)
    speakers = rng.uniform(0, 1, (n, T, 25)).astype(np.float32)
    audio = rng.normal(0, 1, (n, T, 64)).astype(np.float32)
    listeners = rng.uniform(0, 1, (n, T, 25)).astype(np.float32)
    neighbours = rng.uniform(size=(n, n)) < 0.3
    ds = AppropriateWindows(speakers, audio, listeners, neighbours, 50, 25, appropriate=10)
    opt = make_adam(model.parameters(), lr=1e-4, weight_decay=5e-4)  # as regnn train
    order = rng.permutation(len(ds))
    times = []
    for s in range(steps + 1):
        t = time.perf_counter()
        batch = ds.__getitems__(order[s * 128:(s + 1) * 128].tolist())
        out = model.losses(batch["face"], batch["audio"], batch["reactions"], batch["valid"])
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        if s >= 1:
            times.append(time.perf_counter() - t)
    return {"windows_per_s": 128 / statistics.median(times),
            "median_step_s": statistics.median(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="*", default=None,
                    help="torch thread counts to measure (default: 1 and torch's default)")
    ap.add_argument("--run", default=None, help="time a trained run instead of random weights")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    default_threads = torch.get_num_threads()
    threads = args.threads or sorted({1, default_threads})
    torch.manual_seed(0)
    if args.run:
        from regnn.train import load_module

        model = load_module(args.run).model
    else:
        model = REGNN(load_config("paper").model)
    cfg = model.cfg
    n_params = sum(p.numel() for p in model.parameters())
    print(f"REGNN: D={cfg.window} stride={cfg.stride} P={cfg.edge_channels} top_k={cfg.top_k} "
          f"motor layers={cfg.motor_layers} width={cfg.width} heads={cfg.heads} "
          f"parameters={n_params:,}")
    for th in threads:
        torch.set_num_threads(th)
        g = bench_generation(model, args.repeats)
        print(f"[threads={th}] generation, K=10 reactions for one 30-s clip: median "
              f"{g['median_s'] * 1e3:.1f} ms (min {g['min_s'] * 1e3:.1f} ms; target < 100 ms; "
              f"authors' code 1100 ms); motor inverse <= {g['max_iterations']} iterations/layer, "
              f"max residual {g['max_residual']:.1e}")
        tr = bench_training(model, args.steps)
        print(f"[threads={th}] training, batch 128 windows x 10 reactions: "
              f"{tr['windows_per_s']:.0f} windows/s ({tr['median_step_s'] * 1e3:.0f} ms/step; "
              f"target >= 455; authors' code 57 / 91 windows/s)")
    print(f"load average {os.getloadavg()} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()

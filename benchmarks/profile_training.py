"""Where a REGNN training step spends its time, at the authors' configuration.

Same batch and step as ``bench_model.py``'s training figure (128 speaker windows x 10
appropriate reactions, D = 50, P = 8, 2 motor layers, 128-wide fusion; batch assembly, the
losses, backward and the Adam step of ``regnn train``). Prints

* the split of a step: batch assembly / perceptual / cognitive / motor forward / losses /
  backward (all processors) / optimizer step, median over ``--steps`` steps;
* ``torch.profiler``'s table of the ops, with their input shapes, sorted by self CPU time.

    python benchmarks/profile_training.py [--threads N] [--steps S] [--rows R]
"""

from __future__ import annotations

from regnn import mkl

mkl.apply_vendor_fix()  # an entry point: the MKL vendor fix before torch loads

# isort: split

import argparse
import os
import statistics
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from regnn.config import load_config
from regnn.data.training import AppropriateWindows
from regnn.models.afrdl import agreement_loss, distribution_loss
from regnn.models.module import make_adam
from regnn.models.regnn import REGNN

PARTS = ("batch assembly", "perceptual", "cognitive", "motor forward", "losses", "backward",
         "optimizer")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rows", type=int, default=30, help="rows of the profiler table")
    ap.add_argument("--clock", choices=("wall", "thread"), default="wall",
                    help="'thread': this thread's CPU time, robust to other processes' load "
                         "but meaningful only with --threads 1 (all the work on this thread)")
    args = ap.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = REGNN(load_config("paper").model).train()
    cfg = model.cfg
    n, T = 64, 750
    rng = np.random.default_rng(0)
    ds = AppropriateWindows(rng.uniform(0, 1, (n, T, 25)).astype(np.float32),
                            rng.normal(0, 1, (n, T, 64)).astype(np.float32),
                            rng.uniform(0, 1, (n, T, 25)).astype(np.float32),
                            rng.uniform(size=(n, n)) < 0.3, cfg.window, cfg.stride,
                            appropriate=10)
    opt = make_adam(model.parameters(), lr=1e-4, weight_decay=5e-4)
    order = rng.permutation(len(ds))
    n_batches = len(ds) // 128

    def step(s: int) -> list[float]:
        """One step of ``REGNN.losses`` + backward + Adam, timed part by part."""
        s %= n_batches
        t = [clock()]
        batch = ds.__getitems__(order[s * 128:(s + 1) * 128].tolist())
        t.append(clock())
        face = batch["face"]
        fused = model.perceptual(face, batch["audio"])
        t.append(clock())
        zp, edges, adjacency = model.cognitive(fused, face.transpose(1, 2))
        t.append(clock())
        latents = model.encode(batch["reactions"], edges, adjacency)
        t.append(clock())
        loss = (distribution_loss(zp, latents, batch["valid"], cfg.distribution_loss,
                                  cfg.gmm_sigma)
                + cfg.agreement_weight * agreement_loss(latents, batch["valid"]))
        t.append(clock())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t.append(clock())
        opt.step()
        t.append(clock())
        return [b - a for a, b in zip(t, t[1:])]

    for s in range(2):  # warm-up (numba kernel load, allocator)
        step(s)
    parts = [step(s) for s in range(2, 2 + args.steps)]
    medians = [statistics.median(col) for col in zip(*parts)]
    total = sum(medians)
    print(f"MKL: {mkl.status()}")
    print(f"REGNN training step, batch 128 x 10, {torch.get_num_threads()} threads, "
          f"{args.clock} clock (medians of {args.steps} steps):")
    for name, m in zip(PARTS, medians):
        print(f"  {name:15s} {m * 1e3:7.1f} ms  {100 * m / total:5.1f} %")
    print(f"  {'sum':15s} {total * 1e3:7.1f} ms  -> {128 / total:.0f} windows/s")
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for s in range(3):
            step(s)
    print(prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40,
        max_shapes_column_width=70))
    print(f"load average {os.getloadavg()} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()

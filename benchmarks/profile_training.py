"""Where a REGNN training step spends its time, at the authors' configuration.

Same batch and step as ``bench_model.py``'s training figure (128 speaker windows x 10
appropriate reactions, D = 50, P = 8, 2 motor layers, 128-wide fusion; batch assembly,
``REGNN.losses``, backward and the Adam step of ``regnn train``) for a built-in configuration
(``--config``: the default ``regnn``, or ``paper``) or a trained run's weights (``--run``).
Prints

* the split of a step: batch assembly / perceptual / cognitive / motor forward / losses /
  backward (all processors) / optimizer step, median over ``--steps`` steps;
* ``torch.profiler``'s table of the ops, with their input shapes, sorted by self CPU time.

    python benchmarks/profile_training.py [--threads N] [--steps S] [--rows R]
                                          [--config NAME | --run RUN]

The forward's split comes from hooks on the perceptual and motor processors (the cognitive
one runs between them; the motor's forward is the encoding of the real reactions); "losses"
is the rest of ``REGNN.losses``.
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
from regnn.models.module import make_adam
from regnn.models.regnn import REGNN

PARTS = ("batch assembly", "perceptual", "cognitive", "motor forward", "losses", "backward",
         "optimizer")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--config", default="regnn",
                    help="built-in configuration (default: regnn, the default; paper: the "
                         "authors' single-mode one)")
    ap.add_argument("--run", default=None,
                    help="profile a trained run's weights (e.g. demo-output/run) instead of the "
                         "paper configuration's random ones: some paths depend on the weights "
                         "(the motor's softmax guard turns on once its logit bound passes 60)")
    ap.add_argument("--rows", type=int, default=30, help="rows of the profiler table")
    ap.add_argument("--clock", choices=("wall", "thread"), default="wall",
                    help="'thread': this thread's CPU time, robust to other processes' load "
                         "but meaningful only with --threads 1 (all the work on this thread)")
    args = ap.parse_args()
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.run:
        from regnn.models.runs import load_module

        model = load_module(args.run).model.train()
    else:
        model = REGNN(load_config(args.config).model).train()
    cfg = model.cfg
    chunk = load_config(args.config).train.clip_windows
    n, T = 64, 750
    rng = np.random.default_rng(0)
    if args.run:
        from regnn.models.runs import load_run_config

        chunk = load_run_config(args.run)[0].train.clip_windows
    ds = AppropriateWindows(rng.uniform(0, 1, (n, T, 25)).astype(np.float32),
                            rng.normal(0, 1, (n, T, 64)).astype(np.float32),
                            rng.uniform(0, 1, (n, T, 25)).astype(np.float32),
                            rng.uniform(size=(n, n)) < 0.3, cfg.window, cfg.stride,
                            appropriate=10, clip_windows=chunk)
    opt = make_adam(model.parameters(), lr=1e-4, weight_decay=5e-4)
    order = rng.permutation(len(ds))
    per_step = 128 // ds.chunk  # samples per step: windows, or chunks of clip_windows windows
    n_batches = len(ds) // per_step
    marks: dict[str, float] = {}

    def hooks(name: str, module: torch.nn.Module) -> None:
        module.register_forward_pre_hook(lambda *_: marks.__setitem__(name + "<", clock()))
        module.register_forward_hook(lambda *_: marks.__setitem__(name + ">", clock()))

    for name in ("perceptual", "motor"):  # the cognitive processor runs between the two
        hooks(name, getattr(model, name))

    def step(s: int) -> list[float]:
        """One step of ``REGNN.losses`` + backward + Adam, timed part by part."""
        s %= n_batches
        t0 = clock()
        batch = ds.__getitems__(order[s * per_step:(s + 1) * per_step].tolist())
        t1 = clock()
        marks.clear()
        loss = model.losses(batch["face"], batch["audio"], batch["reactions"], batch["valid"],
                            batch["group"])["loss"]
        t2 = clock()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = clock()
        opt.step()
        t4 = clock()
        parts = [marks["perceptual>"] - marks["perceptual<"],
                 marks["motor<"] - marks["perceptual>"], marks["motor>"] - marks["motor<"]]
        return [t1 - t0, *parts, (t2 - t1) - sum(parts), t3 - t2, t4 - t3]

    for s in range(2):  # warm-up (numba kernel load, allocator)
        step(s)
    parts = [step(s) for s in range(2, 2 + args.steps)]
    medians = [statistics.median(col) for col in zip(*parts)]
    total = sum(medians)
    print(f"MKL: {mkl.status()}")
    print(f"REGNN training step ({args.run or args.config}: modes={cfg.modes}, "
          f"{cfg.distribution_loss} loss), batch 128 x 10, {torch.get_num_threads()} threads, "
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

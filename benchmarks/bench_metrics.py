"""Benchmark of the REACT metric suite: speed-ups over the naive reference, full-size time and
peak memory.

    PYTHONPATH=src python benchmarks/bench_metrics.py            # REACT-test size
    PYTHONPATH=src python benchmarks/bench_metrics.py --speakers 200 --subset 8   # quicker

1. **Speed-up** on a subset (``--subset`` speakers, K predictions, ``--appropriate``
   appropriate reactions each): the naive reference of ``tests/react_reference.py`` (loops,
   ``tslearn.metrics.dtw``, per-column ``np.corrcoef``) against the compiled functions, on the
   same inputs, in this run; the values must agree.
2. **Full suite** on ``--speakers`` items (REACT test: 1,612, K = 10, ~10 appropriate, T = 750):
   ``compute_all`` time per metric and the process's peak resident memory (which includes
   the inputs themselves: the predictions alone are 1.2 GB of float32 at REACT size).

Inputs are random: ``--kind smooth`` (default) draws reaction-like sequences (smoothed random
walks inside the attribute ranges); ``--kind uniform`` draws i.i.d. uniform values, the worst
case for the lazy DTW search (every candidate is about as far as every other). The machine's
load average is printed with the figures, since a loaded machine slows everything down.
"""

from __future__ import annotations

from regnn.mkl import apply_vendor_fix

apply_vendor_fix()  # an entry point: the MKL vendor fix before torch loads

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def make_inputs(n: int, k: int, t: int, appropriate: int, kind: str, seed: int):
    rng = np.random.default_rng(seed)

    def seqs(count: int) -> np.ndarray:
        out = np.empty((count, t, 25), np.float32)
        for s0 in range(0, count, 256):
            c = min(256, count - s0)
            if kind == "uniform":
                out[s0:s0 + c] = rng.random((c, t, 25), dtype=np.float32)
                continue
            steps = rng.standard_normal((c, t, 25), dtype=np.float32) * 0.04
            level = rng.random((c, 1, 25), dtype=np.float32)
            walk = np.cumsum(steps, axis=1) + level
            out[s0:s0 + c] = np.abs((walk + 1.0) % 2.0 - 1.0)  # reflect into [0, 1]
            out[s0:s0 + c, :, 15:17] = out[s0:s0 + c, :, 15:17] * 2 - 1
        return out

    speaker = seqs(n)
    listener = seqs(n)
    pred = seqs(n * k).reshape(n, k, t, 25)
    neighbours = np.zeros((n, n), dtype=bool)
    for row in range(n):
        neighbours[row, row] = True
        others = rng.choice(n - 1, size=min(appropriate, n) - 1, replace=False)
        neighbours[row, np.where(others >= row, others + 1, others)] = True
    return pred, speaker, listener, neighbours


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    value = fn(*args, **kw)
    return value, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speakers", type=int, default=1612)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--frames", type=int, default=750)
    ap.add_argument("--appropriate", type=int, default=10)
    ap.add_argument("--subset", type=int, default=12, help="speakers for the speed-up runs")
    ap.add_argument("--kind", choices=["smooth", "uniform"], default="smooth")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--skip-full", action="store_true")
    args = ap.parse_args()

    import react_reference as ref
    from regnn import metrics

    print(f"load average at start: {os.getloadavg()}  cores: {os.cpu_count()}  "
          f"workers: {args.workers or 'all'}  inputs: {args.kind}")
    # warm-up: compile (or load cached) kernels outside the timings
    w = make_inputs(3, 2, 60, 2, args.kind, 1)
    metrics.compute_all(*w[:3], w[3], workers=args.workers)
    metrics.tlcc(w[0], w[1], first_only=True)
    ref.weighted_dtw(w[0][0, 0], w[2][0])  # tslearn compiles its numba DTW on first use


    if not args.skip_naive:
        s = args.subset
        pred, speaker, listener, nb = make_inputs(s, args.k, args.frames, args.appropriate,
                                                  args.kind, args.seed + 1)
        pairs = int(nb.sum()) * args.k
        print(f"\n[speed-up] {s} speakers, K = {args.k}, T = {args.frames}, "
              f"{nb.sum(axis=1).mean():.1f} appropriate per speaker ({pairs} DTW pairs)")
        print(f"{'metric':8s} {'naive s':>10s} {'fast s':>9s} {'speed-up':>9s}  values")
        rows = [
            ("FRDist", lambda: ref.fr_dist(pred, listener, nb),
             lambda: metrics.fr_dist(pred, listener, nb, workers=args.workers)),
            ("FRCorr", lambda: ref.fr_corr(pred, listener, nb),
             lambda: metrics.fr_corr(pred, listener, nb, workers=args.workers)),
            ("PCC", lambda: ref.pcc(pred, listener, nb),
             lambda: metrics.pcc(pred, listener, nb, workers=args.workers)),
            ("TLCC", lambda: ref.tlcc(pred, speaker),
             lambda: metrics.tlcc(pred, speaker, workers=args.workers)),
        ]
        for name, naive, fast in rows:
            v_ref, t_ref = timed(naive)
            v_fast, t_fast = timed(fast)
            print(f"{name:8s} {t_ref:10.2f} {t_fast:9.3f} {t_ref / t_fast:8.1f}x  "
                  f"{v_ref:.6g} / {v_fast:.6g}")
        print(f"load average after the speed-up runs: {os.getloadavg()}")

    if not args.skip_full:
        t0 = time.perf_counter()
        pred, speaker, listener, nb = make_inputs(args.speakers, args.k, args.frames,
                                                  args.appropriate, args.kind, args.seed)
        gen = time.perf_counter() - t0
        print(f"\n[full suite] N = {args.speakers}, K = {args.k}, T = {args.frames}, "
              f"{nb.sum(axis=1).mean():.1f} appropriate per speaker, "
              f"{int(nb.sum()) * args.k} DTW pairs (inputs made in {gen:.1f} s, "
              f"pred = {pred.nbytes / 2**30:.2f} GiB)")
        timings: dict[str, float] = {}
        scores, total = timed(metrics.compute_all, pred, speaker, listener, nb,
                              workers=args.workers, timings=timings)
        for key, sec in timings.items():
            print(f"  {key:20s} {sec:8.2f} s")
        print(f"  {'total':20s} {total:8.2f} s")
        print("  scores: " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"peak resident memory: {peak:.2f} GiB")
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

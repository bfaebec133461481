"""MKL's float32 products with and without regnn's vendor fix (see ``regnn.mkl``).

Times the products a REGNN training step spends most of its time in (the 128-wide fusion's
``nn.Linear`` GEMMs over 128 windows x 50 frames, the motor's batched 25 x 25 x 50 products)
plus a large square GEMM, in fresh processes with ``REGNN_MKL_VENDOR_FIX=0`` and with the
default, alternated ``--rounds`` times, and prints GFLOP/s (best of 5 x 10 calls per round)
and the MKL code branch each process ran::

    python benchmarks/bench_mkl.py [--threads N] [--rounds R]

On an Intel CPU both columns run the same branch (the fix is not needed there).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

# (label, batch, m, k, n): batch 0 = torch.mm, else torch.bmm
SHAPES = [
    ("fusion GEMM 6400x128x256", 0, 6400, 128, 256),
    ("fusion GEMM 6400x256x128", 0, 6400, 256, 128),
    ("fusion GEMM 6400x128x128", 0, 6400, 128, 128),
    ("weight grad 128x6400x256", 0, 128, 6400, 256),
    ("motor bmm 1280x(25x25x50)", 1280, 25, 25, 50),
    ("square GEMM 2048^3", 0, 2048, 2048, 2048),
]

CHILD = """
import json, sys, time
from regnn import mkl
mkl.apply_vendor_fix()  # before torch: the fix unless REGNN_MKL_VENDOR_FIX=0
import torch
torch.set_num_threads({threads})
out = {{"branch": mkl.mkl_branch(), "gflops": {{}}}}
for label, batch, m, k, n in {shapes!r}:
    g = torch.Generator().manual_seed(0)
    if batch:
        a, b = torch.randn(batch, m, k, generator=g), torch.randn(batch, k, n, generator=g)
        op, flop = torch.bmm, 2.0 * batch * m * k * n
    else:
        a, b = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)
        op, flop = torch.mm, 2.0 * m * k * n
    for _ in range(3):
        op(a, b)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(10):
            op(a, b)
        best = min(best, (time.perf_counter() - t) / 10)
    out["gflops"][label] = flop / best / 1e9
print(json.dumps(out))
"""


def run(threads: int, fix: bool) -> dict:
    env = {**os.environ, "REGNN_MKL_VENDOR_FIX": "" if fix else "0"}
    code = CHILD.format(threads=threads, shapes=SHAPES)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    results: dict[bool, list[dict]] = {False: [], True: []}
    for _ in range(args.rounds):
        for fix in (False, True):
            results[fix].append(run(args.threads, fix))
    branch = {fix: sorted({r["branch"] or "no MKL" for r in rs}) for fix, rs in results.items()}
    print(f"float32 products, {args.threads} thread(s), GFLOP/s (median of {args.rounds} "
          f"alternated rounds, each the best of 5 x 10 calls)")
    print(f"  {'':28s} {'fix off':>9s} {'fix on':>9s}  speed-up")
    print(f"  {'MKL branch':28s} {'/'.join(branch[False]):>9s} {'/'.join(branch[True]):>9s}")
    for label, *_ in SHAPES:
        off = statistics.median(r["gflops"][label] for r in results[False])
        on = statistics.median(r["gflops"][label] for r in results[True])
        print(f"  {label:28s} {off:9.1f} {on:9.1f}  {on / off:5.2f}x")
    print(f"load average {os.getloadavg()} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()

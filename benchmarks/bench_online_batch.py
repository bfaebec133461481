"""Batched chunks of an online REGNN: cost per chunk when B sessions are computed together.

    python benchmarks/bench_online_batch.py [--run RUN_ONLINE] [--k 10] [--batches 1,4,16,64]

For each B, B streams of one loaded model compute one chunk each through
``REGNNStream.compute_chunks`` (what ``regnn serve`` does for the sessions due in the same
frame period); prints the median batch time and the time per chunk, with the AR(1) noise
recursion for short chunks on (the default) and off (scipy's lfilter per node, as before),
alternated in the same run. 1 torch thread.
"""

from __future__ import annotations

from regnn.mkl import apply_vendor_fix

apply_vendor_fix()  # an entry point: the MKL vendor fix before torch loads

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", help="online run folder (regnn train --online; default: an "
                    "untrained demo-size online model)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batches", default="1,4,16,64")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()

    import torch

    from regnn.models import regnn as R
    from regnn.models.runs import load_module
    from regnn.online import open_stream
    from regnn.online.model import REGNNStream

    torch.set_num_threads(1)
    if args.run:
        module = load_module(args.run, "best")
    else:
        from regnn.config import load_config, merge
        from regnn.online.model import OnlineREGNN, online_overrides

        torch.manual_seed(0)
        module = OnlineREGNN(merge(load_config("demo"), online_overrides()).model).eval()
    rng = np.random.default_rng(0)
    short = R.SHORT_AR1
    for b in (int(x) for x in args.batches.split(",")):
        streams = [open_stream(module, k=args.k, seed=i) for i in range(b)]
        d = streams[0].context
        reqs = [(s, (rng.random((d, 25)).astype(np.float32),
                     rng.standard_normal((d, 64)).astype(np.float32), 100)) for s in streams]
        REGNNStream.compute_chunks(reqs)  # warm-up, and every stream past its first chunk
        times: dict[str, list[float]] = {"recursion": [], "lfilter": []}
        for _ in range(args.repeats):
            for name, limit in (("recursion", short), ("lfilter", 0)):
                R.SHORT_AR1 = limit
                t = time.perf_counter()
                REGNNStream.compute_chunks(reqs)
                times[name].append(time.perf_counter() - t)
        R.SHORT_AR1 = short
        cells = [f"{name}: batch {np.median(v) * 1e3:7.2f} ms, per chunk "
                 f"{np.median(v) / b * 1e3:6.3f} ms" for name, v in times.items()]
        print(f"B={b:<3d} K={args.k}  " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()

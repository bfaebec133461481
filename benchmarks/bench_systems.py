"""Per-system cost of ``regnn bench --budget demo`` and its projected total.

For every system of the bench: the measured wall time of a short training (``--epochs``
epochs with the demo budget's batch size and model) extrapolated to the demo budget's
epochs, the measured generation time of K = 10 reactions for a few test items extrapolated to
the whole split, and the scoring time of the split's predictions. Prints one row per system,
the projected total for ``--seeds`` seeds against the 45-minute target, and the load average
(figures measured under load are slower than on a quiet machine).

    python benchmarks/bench_systems.py [--data DIR] [--epochs 1] [--seeds 3] [--threads 0]

Without ``--data`` it writes the default synthetic dataset (80 dyads) to a temporary folder.
To measure the real thing, run ``regnn bench --data DIR --out OUT`` (it prints its wall time).
"""

from __future__ import annotations

from regnn.mkl import apply_vendor_fix

apply_vendor_fix()  # an entry point: the MKL vendor fix before torch loads

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--epochs", type=int, default=1, help="epochs actually trained per system")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--items", type=int, default=4, help="test items generated per system")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--systems", nargs="+", default=None)
    args = ap.parse_args()

    import numpy as np

    from regnn.bench.runner import SYSTEMS, _SplitData, bench_config
    from regnn.bench.scoring import score
    from regnn.generate import generate_predictions
    from regnn.models.variants import deep_merge
    from regnn.train import train

    tmp = tempfile.TemporaryDirectory()
    data = Path(args.data) if args.data else Path(tmp.name) / "data"
    if args.data is None:
        from regnn.data.synthetic import write_synthetic

        write_synthetic(data, dyads=80, seed=0)
    split = _SplitData(data, "test")
    n_items = len(split.ds)
    print(f"data {data} ({n_items} test items); load average before: {os.getloadavg()}")
    print(f"{'system':<14} {'epochs':>6} {'s/epoch':>8} {'train s':>8} {'gen s':>7} "
          f"{'score s':>8} {'job s':>7}")
    total = 0.0
    for system in args.systems or SYSTEMS:
        config = bench_config(system, "demo", args.threads)
        epochs = config.train.epochs
        short = deep_merge({}, {"train": {"epochs": args.epochs}})
        from regnn.config import merge

        run = Path(tmp.name) / system
        t0 = time.perf_counter()
        train(merge(config, short), data, run / "train", seed=0, progress=False)
        per_epoch = (time.perf_counter() - t0) / args.epochs
        t0 = time.perf_counter()
        generate_predictions(run / "train", data, "test", run / "pred", samples=10, seed=0,
                             progress=False, limit=args.items)
        gen = (time.perf_counter() - t0) / args.items * n_items
        rng = np.random.default_rng(0)
        pred = rng.random((n_items, 10, *split.listeners.shape[1:]), dtype=np.float32)
        t0 = time.perf_counter()
        score(pred, split.speakers, split.listeners, split.neighbours)
        sc = time.perf_counter() - t0
        job = per_epoch * epochs + gen + sc
        total += job
        print(f"{system:<14} {epochs:>6} {per_epoch:>8.2f} {per_epoch * epochs:>8.1f} "
              f"{gen:>7.1f} {sc:>8.1f} {job:>7.1f}", flush=True)
    print(f"projected demo bench, {args.seeds} seed(s): {total * args.seeds / 60:.1f} min "
          f"(target < 45 min on 2 cores); load average after: {os.getloadavg()}")
    tmp.cleanup()


if __name__ == "__main__":
    main()

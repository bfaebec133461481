"""Benchmark: appropriateness matrix for 3,000 items (target: < 60 s on 2 CPU cores).

    python benchmarks/bench_neighbours.py                  # distances + grouping, all methods
    python benchmarks/bench_neighbours.py --items 1000 --methods motion
    python benchmarks/bench_neighbours.py --end-to-end     # also: write a 1,500-row REACT
                                                           # layout once, then time the whole
                                                           # build_neighbours (CSV reading too)

Speaker behaviours are generated in memory with a planted group structure (items of a group
share a smooth prototype time course), so the run also prints precision/recall against the
planted groups as a sanity check. Prints the figures, the peak resident memory and
``os.getloadavg()`` (figures taken under load are slower).
"""

from __future__ import annotations

from regnn.mkl import apply_vendor_fix

apply_vendor_fix()  # an entry point: the MKL vendor fix before torch loads

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from regnn import schema  # noqa: E402
from regnn.data import neighbours as nb  # noqa: E402


def planted(items: int, groups: int, frames: int = schema.CLIP_FRAMES, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    """(items, frames, 25) float32 attributes in [0, 1] and the group of each item."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, items)
    protos = gaussian_filter1d(rng.normal(size=(groups, frames, 6)), 10, axis=1)
    w = rng.normal(0, 0.8, (6, schema.NUM_ATTRIBUTES)).astype(np.float32)
    x = np.empty((items, frames, schema.NUM_ATTRIBUTES), dtype=np.float32)
    for i in range(items):
        u = protos[g[i]] * 3 + gaussian_filter1d(rng.normal(size=(frames, 6)), 10, axis=0) * 1.5
        x[i] = 1 / (1 + np.exp(-(u @ w + rng.normal(0, 0.3, schema.NUM_ATTRIBUTES))))
    return schema.clip_to_ranges(x).astype(np.float32), g  # expressions renormalised


def write_layout(root: Path, x: np.ndarray) -> None:
    """A minimal REACT layout (train split, attribute CSVs only) holding the items of ``x``."""
    from regnn.utils.io import atomic_open, write_text

    n = len(x) // 2
    header = ",".join(schema.ATTRIBUTE_NAMES)
    rows = [",speaker_path,listener_path"]
    for r in range(n):
        a, b = f"Bench/s{r // 4:04d}/A/{r % 4 + 1}", f"Bench/s{r // 4:04d}/B/{r % 4 + 1}"
        rows.append(f"{r},{a},{b}")
        for person, values in ((a, x[r]), (b, x[n + r])):
            path = root / "train" / "Emotion" / f"{person}.csv"
            with atomic_open(path, "w", encoding="utf-8") as fh:
                body = np.concatenate([values, values[-1:]])  # 751 rows as released
                np.savetxt(fh, body, fmt="%.5f", delimiter=",", header=header, comments="")
    write_text(root / "train.csv", "\n".join(rows) + "\n")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=3000)
    ap.add_argument("--groups", type=int, default=40)
    ap.add_argument("--methods", default=",".join(nb.METHODS),
                    help="distances to time; 'auto' times the default choice (motion first)")
    ap.add_argument("--end-to-end", action="store_true")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "regnn-bench-nb"))
    args = ap.parse_args()
    print(f"bench_neighbours: {args.items} items x {schema.CLIP_FRAMES} frames x 25, "
          f"{args.groups} planted groups; cpus={os.cpu_count()} "
          f"loadavg={tuple(round(v, 2) for v in os.getloadavg())}")
    t0 = time.perf_counter()
    x, g = planted(args.items, args.groups)
    truth = g[:, None] == g[None, :]
    print(f"  generated in {time.perf_counter() - t0:.1f} s")
    if "dtw" in args.methods:  # compile outside the timing (numba caches it on disk too)
        nb.distance_matrix(x[:3], "dtw")
    for method in args.methods.split(","):
        t0 = time.perf_counter()
        if method == "auto":  # distances and grouping together; not in mirrored order
            choice = nb.choose(x)
            d, grouping = choice.distances, choice.grouping
            t1 = t2 = time.perf_counter()
            method = f"auto->{choice.method}"
        else:
            d = nb.distance_matrix(x, method)
            t1 = time.perf_counter()
            grouping = nb.group(d)
            t2 = time.perf_counter()
        pr = nb.precision_recall(grouping.matrix, truth)
        print(f"  {method:<12} distances {t1 - t0:6.2f} s  grouping (auto) {t2 - t1:5.2f} s  "
              f"total {t2 - t0:6.2f} s  precision {pr['precision']:.3f} recall "
              f"{pr['recall']:.3f}  peak RSS {peak_mib():.0f} MiB  "
              f"loadavg={tuple(round(v, 2) for v in os.getloadavg())}")
        del d
    if args.end_to_end:
        root = Path(args.cache) / f"items{args.items}"
        if not (root / "train.csv").is_file():
            t0 = time.perf_counter()
            write_layout(root, x)
            print(f"  wrote {args.items} attribute CSVs to {root} in "
                  f"{time.perf_counter() - t0:.1f} s (once; reused next time)")
        t0 = time.perf_counter()
        res = nb.build_neighbours(root, "train")
        dt = time.perf_counter() - t0
        pr = nb.precision_recall(res.matrix, truth)
        print(f"  end-to-end build_neighbours(train, {len(res.matrix)} items, {res.method}, "
              "auto): "
              f"{dt:.2f} s (reading {args.items} CSVs included)  precision "
              f"{pr['precision']:.3f} recall {pr['recall']:.3f}  peak RSS {peak_mib():.0f} MiB"
              f"  loadavg={tuple(round(v, 2) for v in os.getloadavg())}")


if __name__ == "__main__":
    main()

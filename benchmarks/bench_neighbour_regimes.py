"""Benchmark: does ``regnn data neighbours`` recover the known truth of every synthetic regime?

    python benchmarks/bench_neighbour_regimes.py                       # all regimes, seeds 0 1
    python benchmarks/bench_neighbour_regimes.py --regimes episodes --seeds 0,1,2
    python benchmarks/bench_neighbour_regimes.py --audio               # + auto with --audio
    python benchmarks/bench_neighbour_regimes.py --markdown            # the docs table

For each regime and seed it writes ``regnn synth --regime R --seed S --dyads D`` (once, into
``--cache``; reused when present), reads every split's speaker behaviours as
``regnn data neighbours`` does, builds the matrix with every method (threshold ``auto``,
complete linkage, all other settings the defaults) and compares its off-diagonal ones with
``synthetic_truth.json``. Precision and recall are pooled over the three splits (true
positives, built and true pairs summed), and the worst split is shown beside them. For
``auto`` the chosen distance is listed per split (m = motion, d = dtw, - = none grouped).
Precision and recall are also given among the first persons speaking (forward items) and
among the second persons speaking (mirrored items) separately: the truth never groups one
with the other.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from regnn.data import neighbours as nb  # noqa: E402
from regnn.data.regimes import regime_names  # noqa: E402

SPLITS = ("train", "val", "test")


def dataset(cache: Path, regime: str, seed: int, dyads: int) -> Path:
    from regnn.data.synthetic import write_synthetic

    root = cache / f"{regime}-s{seed}-d{dyads}"
    if not (root / "synthetic.json").is_file():
        write_synthetic(root, dyads=dyads, seed=seed, regime=regime)
    return root


def evaluate(root: Path, methods: list[str], audio: bool) -> dict[str, dict]:
    """Per method: pooled precision/recall, worst split, chosen distances."""
    truth = json.loads((root / "synthetic_truth.json").read_text())["groups"]
    out: dict[str, dict] = {}
    data = {s: nb.load_behaviours(root, s, audio=audio, workers=1) for s in SPLITS}
    for method in methods:
        use_audio = method.endswith("+audio")
        name = method.removesuffix("+audio")
        tp = pred = true = 0
        worst_p, worst_r, chosen = 1.0, 1.0, []
        blocks = {"first": [0, 0, 0], "second": [0, 0, 0]}  # tp, built, true per item kind
        for split in SPLITS:
            speakers, mels = data[split]
            choice = nb.build_from_arrays(speakers, mels if use_audio else None, name)
            g = np.asarray(truth[split])
            pr = nb.precision_recall(choice.grouping.matrix, g[:, None] == g[None, :])
            tp, pred, true = tp + pr["true_positives"], pred + pr["predicted"], true + pr["true"]
            worst_p = min(worst_p, pr["precision"] if pr["predicted"] else 1.0)
            worst_r = min(worst_r, pr["recall"] if pr["true"] else 1.0)
            n = len(g) // 2
            for kind, sl in (("first", slice(0, n)), ("second", slice(n, 2 * n))):
                b = nb.precision_recall(choice.grouping.matrix[sl, sl],
                                        (g[:, None] == g[None, :])[sl, sl])
                acc = blocks[kind]
                acc[0] += b["true_positives"]
                acc[1] += b["predicted"]
                acc[2] += b["true"]
            grouped = choice.grouping.threshold_rule == "auto"
            chosen.append(choice.method[0] if grouped else "-")
        out[method] = {"precision": tp / pred if pred else float("nan"),
                       "recall": tp / true if true else float("nan"),
                       "worst_precision": worst_p, "worst_recall": worst_r,
                       "chosen": "".join(chosen),
                       # pairs among first persons speaking / among second persons speaking
                       **{f"{k}_{m}": (v[0] / v[i] if v[i] else float("nan"))
                          for k, v in blocks.items()
                          for m, i in (("precision", 1), ("recall", 2))}}
    return out


def fmt(x: float) -> str:
    return "n/a" if x != x else f"{x:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--regimes", default=",".join(regime_names()))
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--dyads", type=int, default=80)
    ap.add_argument("--methods", default=",".join(nb.METHODS))
    ap.add_argument("--audio", action="store_true", help="also run auto with --audio")
    ap.add_argument("--cache", default=os.environ.get("REGNN_BENCH_CACHE", "bench-regimes"),
                    help="folder for the synthetic datasets (reused)")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",") + (["auto+audio"] if args.audio else [])
    cache = Path(args.cache)
    t0 = time.perf_counter()
    rows = []
    for regime in args.regimes.split(","):
        per_seed = [evaluate(dataset(cache, regime, s, args.dyads), methods, args.audio)
                    for s in seeds]
        for method in methods:
            rows.append((regime, method, [r[method] for r in per_seed]))
            cells = "  ".join(
                f"s{s}: {fmt(r[method]['precision'])}/{fmt(r[method]['recall'])} "
                f"(worst split {fmt(r[method]['worst_precision'])}/"
                f"{fmt(r[method]['worst_recall'])}"
                + (f", chose {r[method]['chosen']}" if method.startswith("auto") else "")
                + f"; first persons {fmt(r[method]['first_precision'])}/"
                f"{fmt(r[method]['first_recall'])}, second {fmt(r[method]['second_precision'])}/"
                f"{fmt(r[method]['second_recall'])}"
                + ")" for s, r in zip(seeds, per_seed, strict=True))
            print(f"{regime:<14} {method:<11} {cells}", flush=True)
    print(f"({time.perf_counter() - t0:.0f} s; {args.dyads} dyads per dataset; P/R pooled "
          f"over train/val/test; loadavg {tuple(round(v, 1) for v in os.getloadavg())})")
    if args.markdown:
        head = " | ".join(f"seed {s} P / R (worst split)" for s in seeds)
        print(f"\n| regime | method | {head} |")
        print("|---|---|" + "---|" * len(seeds))
        for regime, method, res in rows:
            cells = " | ".join(
                f"{fmt(r['precision'])} / {fmt(r['recall'])} ({fmt(r['worst_precision'])} / "
                f"{fmt(r['worst_recall'])})"
                + (f" [{r['chosen']}]" if method.startswith("auto") else "") for r in res)
            print(f"| {regime} | {method} | {cells} |")
        print("\nBy item kind (pairs among first persons speaking / among second persons "
              "speaking), P / R:")
        kinds = " | ".join(f"seed {s} first | seed {s} second" for s in seeds)
        print(f"\n| regime | method | {kinds} |")
        print("|---|---|" + "---|---|" * len(seeds))
        for regime, method, res in rows:
            if method.startswith("auto"):
                cells = " | ".join(
                    f"{fmt(r['first_precision'])} / {fmt(r['first_recall'])} | "
                    f"{fmt(r['second_precision'])} / {fmt(r['second_recall'])}" for r in res)
                print(f"| {regime} | {method} | {cells} |")


if __name__ == "__main__":
    main()

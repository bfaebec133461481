"""``regnn demo``: the whole pipeline on a fresh synthetic dataset.

synthesise -> validate -> train REGNN (``demo`` config) -> generate K reactions per test
speaker -> evaluate against the trivial REACT references -> write the HTML report.
Every stage writes into ``--out``; a finished stage is reused when the demo is run again.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from regnn.commands._common import add_seed, subcommand


def register(sub: argparse._SubParsersAction) -> None:
    p = subcommand(sub, "demo", "run the whole pipeline on a fresh synthetic dataset",
                   "Synthesise the default synthetic REACT dataset, validate it, train REGNN "
                   "with the small 'demo' config, generate K reactions per test speaker, "
                   "evaluate them with the REACT metrics next to the trivial references, and "
                   "write an HTML report. About 5 minutes on 2 CPU cores. A finished stage "
                   "found in --out is reused (delete the folder to start over).")
    p.add_argument("--out", default="demo-output", help="output folder")
    p.add_argument("--dyads", type=int, default=80, help="dyad clips in the synthetic data")
    p.add_argument("--samples", type=int, default=10, help="reactions per speaker (K)")
    p.add_argument("--epochs", type=int, default=None,
                   help="override the demo config's number of epochs")
    add_seed(p)
    p.set_defaults(func=run)


def _stage(n: int, text: str) -> float:
    print(f"\n[{n}/6] {text}", flush=True)
    return time.perf_counter()


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from regnn.commands.synth import print_summary
    from regnn.config import load_config
    from regnn.data.check import check_dataset
    from regnn.data.synthetic import write_synthetic
    from regnn.evaluate import evaluate_with_references
    from regnn.generate import generate_predictions
    from regnn.report import write_report
    from regnn.train import train

    t_start = time.perf_counter()
    out = Path(args.out)
    data, run_dir, pred = out / "data", out / "run", out / "pred"
    timings: dict[str, float] = {}

    t0 = _stage(1, f"synthesising the REACT-layout dataset -> {data}")
    if (data / "synthetic.json").is_file():
        print("  reusing the finished dataset")
    else:
        print_summary(write_synthetic(data, dyads=args.dyads, seed=args.seed, progress=True))
    timings["synth"] = time.perf_counter() - t0

    t0 = _stage(2, f"validating {data} (regnn data check)")
    problems, _ = check_dataset(data)
    if problems:
        for p in problems[:20]:
            print(f"  {p}")
        print(f"demo: the dataset has {len(problems)} problems")
        return 1
    print("  OK: no problems")
    timings["check"] = time.perf_counter() - t0

    t0 = _stage(3, f"training REGNN (config 'demo') -> {run_dir}")
    if (run_dir / "train.json").is_file():
        print("  reusing the finished run")
    else:
        overrides = {"train": {"epochs": args.epochs}} if args.epochs else None
        config = load_config("demo", overrides)
        summary = train(config, data, run_dir, seed=args.seed,
                        resume=(run_dir / "checkpoints" / "last.ckpt").is_file())
        print(f"  trained {summary.get('epochs', '?')} epochs")
    timings["train"] = time.perf_counter() - t0

    t0 = _stage(4, f"generating K={args.samples} reactions per test speaker -> {pred}")
    gen = generate_predictions(run_dir, data, "test", pred, samples=args.samples,
                               seed=args.seed, progress=True)
    inv = gen["motor_inverse"]
    print(f"  {gen['items']} items in {gen['wall_s']:.1f} s ({gen['reactions_per_s']:.1f} "
          f"reactions/s); motor inverse: {inv['max_iterations']} iterations, residual <= "
          f"{inv['max_residual']:.2e}, error <= {inv['max_certified_error']:.2e} (certified)")
    timings["generate"] = time.perf_counter() - t0

    t0 = _stage(5, "evaluating with the REACT metrics (test split)")
    rows = evaluate_with_references(data, "test", pred, k=args.samples, seed=args.seed)
    print_table(rows)
    timings["evaluate"] = time.perf_counter() - t0

    t0 = _stage(6, "writing the HTML report")
    report = write_report(run_dir, pred, data, out / "report.html", n_items=2, gif_seconds=6,
                          notes=[f"regnn demo, seed {args.seed}, K = {args.samples}"])
    timings["report"] = time.perf_counter() - t0
    total = time.perf_counter() - t_start
    print("\n  " + "  ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    print(f"demo finished in {total:.0f} s ({np.floor(total / 60):.0f} min "
          f"{total % 60:.0f} s)")
    print(f"report: {report.resolve()}")
    return 0


def print_table(rows: dict[str, dict]) -> None:
    """The REACT metrics, then this project's additions (Jitter, FRDivRatio: closest to 1 is
    best, marked ~)."""
    from regnn.results import METRIC

    keys = ["FRCorr", "FRDist", "PCC", "FRDiv", "FRVar", "FRDvs", "TLCC", "FRRea",
            "Jitter", "FRDivRatio", "FRCov"]
    arrows = {"higher": "^", "lower": "v", "one": "~"}
    print("  " + f"{'system':<9}" + "".join(f"{k + arrows[METRIC[k].better]:>12}"
                                            for k in keys))
    for name, s in rows.items():
        print("  " + f"{name:<9}" + "".join(f"{s.get(k, float('nan')):>12.3f}" for k in keys))
    print("  (^ higher is better, v lower, ~ closest to 1; Jitter, FRDivRatio and FRCov are "
          "regnn's additions, not REACT metrics)")

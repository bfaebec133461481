"""``regnn bench``: reproduce the paper's Tables I and II on a dataset, resumably."""

from __future__ import annotations

import argparse

from regnn.commands._common import subcommand
from regnn.utils.device import DEVICE_HELP


def register(sub: argparse._SubParsersAction) -> None:
    from regnn.bench.runner import SYSTEMS

    p = subcommand(
        sub, "bench", "train, generate and score every system of the paper's Tables I and II",
        "Train every comparison system (huang-s, huang-c, unet, l2l), REGNN, its ablations "
        "(face-only, audio-only, no-afrdl, iresnet-motor, no-mefl) and the paper's and the "
        "authors' versions of the method (regnn-paper, regnn-authors) with the same data, "
        "budget and seeds; generate K reactions per test speaker; score every metric; add the "
        "references (GT, Random, Mime, MeanSeq, MeanFr, and regnn's retrieval reference NN). "
        "Writes OUT/table1.md, OUT/table2.md (the paper's layout, mean ± std over seeds, next "
        "to the published numbers), OUT/multiple.md (appropriateness beside Jitter, "
        "FRDivRatio and FRCov), OUT/claims.md, OUT/results.csv and OUT/fig_<family>.png. "
        "Re-running skips finished (system, seed) jobs.",
    )
    p.add_argument("--data", default=None,
                   help="dataset root (REACT layout); not with --regimes, which writes its own")
    p.add_argument("--regimes", nargs="+", default=None, metavar="REGIME",
                   help="run on synthetic regimes instead of --data ('all' or names; see "
                        "regnn synth --regime): OUT/data/<regime>, OUT/<regime>/ (tables) and "
                        "OUT/regimes.md (which claims hold where); systems default to regnn")
    p.add_argument("--data-seed", type=int, default=0,
                   help="with --regimes: the seed of the synthetic datasets")
    p.add_argument("--out", required=True, help="bench folder (created; re-use it to resume)")
    p.add_argument("--budget", default="demo", choices=["demo", "full"],
                   help="demo: small models and short training; full: the paper's settings")
    p.add_argument("--seeds", type=int, default=3,
                   help="training seeds per system (0 .. SEEDS-1); tables give mean ± std")
    p.add_argument("--systems", nargs="+", default=None, metavar="NAME",
                   help=f"systems to run (default: all of {' '.join(SYSTEMS)}; with "
                        "--regimes: regnn)")
    p.add_argument("--samples", type=int, default=10, help="reactions per speaker (K)")
    p.add_argument("--split", default="test", choices=["val", "test"],
                   help="split the reactions are generated for and scored on")
    p.add_argument("--no-references", action="store_true",
                   help="leave out the GT/Random/Mime/MeanSeq/MeanFr/NN rows")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads per training (0 = torch's default)")
    p.add_argument("--device", default="cpu",
                   help=f"where the systems train and generate: {DEVICE_HELP}")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from regnn.bench import run_bench
    from regnn.errors import ConfigError

    options = dict(budget=args.budget, seeds=args.seeds, references=not args.no_references,
                   k=args.samples, split=args.split, threads=args.threads,
                   progress=not args.no_progress, device=args.device)
    if args.regimes:
        if args.data is not None:
            raise ConfigError("--regimes writes its own datasets: leave out --data")
        from regnn.bench.regimes import REGIME_SYSTEMS, run_regimes

        systems = args.systems or list(REGIME_SYSTEMS)
        run_regimes(args.out, args.regimes, data_seed=args.data_seed, systems=systems,
                    **options)
        print((Path(args.out) / "regimes.md").read_text("utf-8"), end="")
        return 0
    if args.data is None:
        raise ConfigError("give --data DATA (a REACT-layout dataset) or --regimes")
    from regnn.bench.runner import SYSTEMS

    summary = run_bench(args.data, args.out, systems=args.systems or list(SYSTEMS), **options)
    out = Path(args.out)
    for name in ("table1.md", "table2.md", "multiple.md", "claims.md"):
        print()
        print((out / name).read_text("utf-8"), end="")
    print(f"\nbench finished in {summary['wall_s_this_call']:.1f} s (this call; load average "
          f"{summary['loadavg_end']}, {summary['cpu_count']} CPUs); results in {out}/")
    return 0

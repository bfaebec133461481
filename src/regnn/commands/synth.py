"""``regnn synth``: write a synthetic dataset in the REACT layout."""

from __future__ import annotations

import argparse
import json

from regnn.commands._common import add_seed, subcommand


def register(sub: argparse._SubParsersAction) -> None:
    from regnn.data.regimes import REGIMES

    p = subcommand(sub, "synth", "write a synthetic dataset in the exact REACT layout",
                   "Write a synthetic REACT-layout dataset (split CSVs, 751-row attribute "
                   "CSVs, WAV audio, appropriateness matrices) whose speaker-to-reaction "
                   "mapping is one-to-many by construction. See docs/synthetic-data.md.")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--dyads", type=int, default=80,
                   help="number of dyad clips over all splits (sessions of 4 clips, 60/20/20)")
    p.add_argument("--regime", default="aligned", choices=tuple(REGIMES), metavar="NAME",
                   help="generative regime (default aligned, the demo data): "
                        + "; ".join(f"{name}: {r.stresses}" for name, r in REGIMES.items()
                                    ).replace("%", "%%")
                        + ". See docs/synthetic-data.md")
    p.add_argument("--styles", type=int, default=None,
                   help="listener reaction styles: how many clearly different appropriate "
                        "reactions one speaker behaviour has (>= 1; default: the regime's, "
                        "3 for aligned)")
    p.add_argument("--clusters", type=int, default=None,
                   help="speaker behaviour clusters, or contexts in the episode regimes "
                        "(speakers of one cluster share their listeners' reactions as "
                        "appropriate; >= 1; default: the regime's, 4 for aligned); with "
                        "--dyads it sets the number of listeners per context")
    add_seed(p)
    p.add_argument("--video", action="store_true", help="also write 64x64 PNG face frames")
    p.add_argument("--3dmm", dest="threedmm", action="store_true",
                   help="also write (751, 58) 3DMM coefficient .npy files")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from regnn.data.synthetic import write_synthetic
    from regnn.errors import ConfigError

    try:
        summary = write_synthetic(args.out, dyads=args.dyads, seed=args.seed, video=args.video,
                                  threedmm=args.threedmm, progress=True, styles=args.styles,
                                  clusters=args.clusters, regime=args.regime)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    return 0


def print_summary(summary: dict) -> None:
    print(f"synthetic REACT dataset: {summary['root']}  ({summary['dyads']} dyad clips, "
          f"seed {summary['seed']}, {summary['seconds']} s)")
    print(f"  {'split':<6} {'rows':>5} {'items':>6} {'appropriate per speaker (mean/min/max)':>40}")
    for split, s in summary["splits"].items():
        print(f"  {split:<6} {s['rows']:>5} {s['items']:>6} "
              f"{s['appropriate_mean']:>30.2f} / {s['appropriate_min']} / {s['appropriate_max']}")
    o = summary["one_to_many"]
    diff = o["ccc_different_style"]
    print(f"  regime {summary.get('regime', 'aligned')}: "
          f"{summary['clusters']} speaker clusters, {summary['styles']} listener styles; "
          f"one-to-many: CCC between reactions to the same speaker, same style "
          f"{o['ccc_same_style']:.3f}, "
          + ("different styles n/a (one style)" if diff is None
             else f"different styles {diff:.3f}"))

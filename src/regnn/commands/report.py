"""``regnn report``: one self-contained HTML page with metrics, plots and animations."""

from __future__ import annotations

import argparse

from regnn.commands._common import add_seed, subcommand


def register(sub: argparse._SubParsersAction) -> None:
    p = subcommand(
        sub, "report", "write a self-contained HTML report (metrics, curves, plots, GIFs)",
        "Write one HTML file with everything embedded: the metrics table from "
        "PRED/scores.json, the training curves from RUN/**/metrics.csv (Lightning CSV "
        "logs), the distribution of generated vs real reactions, and for a few items the "
        "attribute time series and a face animation (GIF). Missing scores, logs or "
        "predictions are reported on the page, not an error.")
    p.add_argument("--run", default=None, help="training run folder (Lightning logs)")
    p.add_argument("--pred", default=None, help="predictions folder (with scores.json)")
    p.add_argument("--data", required=True, help="REACT-layout dataset folder")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="which split of the dataset")
    p.add_argument("--out", required=True, help="output HTML file")
    p.add_argument("--items", type=int, nargs="+", default=None,
                   help="item indices to show (omit for --n-items evenly spaced items)")
    p.add_argument("--n-items", type=int, default=2, help="how many items to show")
    p.add_argument("--n-generated", type=int, default=3,
                   help="generated reactions per animation")
    p.add_argument("--gif-seconds", type=float, default=8.0, help="length of each animation")
    p.add_argument("--gif-fps", type=float, default=12.5, help="frame rate of the animations")
    p.add_argument("--face-size", type=int, default=96, help="pixels per face in animations")
    p.add_argument("--embedding", choices=("pca", "tsne"), default="pca",
                   help="2-D embedding of reaction windows")
    p.add_argument("--title", default="regnn report", help="page title")
    add_seed(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from regnn.errors import ConfigError
    from regnn.report import ReportOptions, write_report

    if args.face_size < 32 or args.gif_seconds <= 0 or args.gif_fps <= 0:
        raise ConfigError("--face-size must be >= 32 and --gif-seconds, --gif-fps positive")
    opts = ReportOptions(n_items=args.n_items, items=args.items, n_generated=args.n_generated,
                         gif_seconds=args.gif_seconds, gif_fps=args.gif_fps,
                         face_size=args.face_size, embedding=args.embedding, seed=args.seed,
                         title=args.title)
    path = write_report(args.run, args.pred, args.data, args.out, split=args.split,
                        options=opts)
    print(f"report: {path.resolve()}")
    return 0

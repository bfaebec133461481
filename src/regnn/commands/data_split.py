"""``regnn data split``: train/val/test lists grouped by session, from one list of clips."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from regnn.commands._common import add_seed, subcommand


def register(sub: argparse._SubParsersAction) -> None:
    p = subcommand(
        sub, "split", "create session-grouped train/val/test lists from one list of clips",
        "Read <root>/all.csv (header ',speaker_path,listener_path', one row per dyad clip; "
        "person files under <root>/all/Emotion, Audio_files, ...), assign whole sessions "
        "(site/session) to train/val/test with --seed so that no session is in two splits, "
        "write train.csv, val.csv, test.csv and split.json, link each person's files into "
        "<root>/<split>/, then build each split's appropriateness matrix (regnn data "
        "neighbours defaults). Refuses to overwrite existing split lists without --force.")
    p.add_argument("root", help="dataset folder holding all.csv and all/")
    p.add_argument("--fractions", type=float, nargs=3, default=[0.6, 0.2, 0.2],
                   metavar=("TRAIN", "VAL", "TEST"), help="target shares of the rows")
    add_seed(p)
    p.add_argument("--link", choices=["hardlink", "copy", "symlink"], default="hardlink",
                   help="how person files are placed into the split folders")
    p.add_argument("--no-neighbours", action="store_true",
                   help="do not build neighbour_emotion_<split>.npy")
    p.add_argument("--force", action="store_true",
                   help="overwrite existing split lists and matrices")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from regnn.data.splits import split_dataset, write_matrices

    summary = split_dataset(args.root, args.fractions, args.seed, args.link, args.force,
                            progress=sys.stderr.isatty())
    print(f"split {args.root} by session (seed {args.seed}):")
    for split, s in summary["splits"].items():
        print(f"  {split:<6} {s['rows']:>5} rows  {s['items']:>5} items  "
              f"{s['sessions']:>4} sessions")
    if not args.no_neighbours:
        write_matrices(Path(args.root), args.force, progress=sys.stderr.isatty())
    return 0

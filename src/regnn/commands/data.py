"""``regnn data ...``: dataset tools (``check``; more sub-commands register here)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from types import ModuleType

from regnn.commands import data_import, data_neighbours, data_split
from regnn.commands._common import subcommand

#: modules adding ``regnn data <name>`` sub-commands, each with ``register(subparsers)``
DATA_COMMANDS: tuple[ModuleType, ...] = (data_neighbours, data_split, data_import)


def register(sub: argparse._SubParsersAction) -> None:
    p = subcommand(sub, "data", "dataset tools: validate, build matrices, split, import")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    dsub.required = True
    c = subcommand(dsub, "check", "validate a REACT-layout dataset and list every problem",
                   "Validate a REACT-layout dataset: split lists, attribute CSVs (columns, "
                   "rows, NaN/inf, ranges), audio, optional video/3DMM, appropriateness "
                   "matrices. Lists each problem with its file and row; exit status 1 if any.")
    c.add_argument("root", help="dataset folder")
    c.add_argument("--split", action="append", choices=["train", "val", "test"],
                   help="check only this split (repeatable; default all three)")
    c.add_argument("--no-audio", action="store_true", help="skip the audio checks")
    c.add_argument("--limit", type=int, default=50,
                   help="print at most this many problems (all are counted)")
    c.set_defaults(func=run_check)
    for module in DATA_COMMANDS:
        module.register(dsub)


def run_check(args: argparse.Namespace) -> int:
    from regnn.data.check import check_dataset

    splits = tuple(args.split) if args.split else ("train", "val", "test")
    problems, summary = check_dataset(args.root, splits, audio=not args.no_audio,
                                      progress=sys.stderr.isatty())
    for split, s in summary["splits"].items():
        print(f"{split:<6} {s['rows']:>5} rows  {s['items']:>5} items  {s['persons']:>5} persons")
    if not problems:
        print(f"OK: no problems found in {args.root}")
        return 0
    for p in problems[: args.limit]:
        print(p)
    if len(problems) > args.limit:
        print(f"... and {len(problems) - args.limit} more")
    kinds = ", ".join(f"{k}: {n}" for k, n in Counter(p.kind for p in problems).most_common())
    print(f"FAILED: {len(problems)} problems ({kinds})")
    return 1

"""``regnn data import``: build the REACT layout from a description CSV of dyad clips."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from regnn.commands._common import add_seed, subcommand


def register(sub: argparse._SubParsersAction) -> None:
    p = subcommand(
        sub, "import", "build a REACT-layout dataset from a description CSV of your clips",
        "Build a REACT-layout dataset from DESCRIPTION, a CSV with one line per dyad clip: "
        "site, session, clip, speaker, listener, speaker_attributes, listener_attributes, "
        "speaker_audio, listener_audio [, split] [, format]. Attribute files hold the 25 "
        "attributes (by name or in order), your own column names (--mapping), or OpenFace 2 "
        "FeatureExtraction output (--format openface). Every line is validated before "
        "anything is written; errors name the description line. Without a split column, "
        "sessions are split with --seed. Then each split's appropriateness matrix is built "
        "(regnn data neighbours defaults). Format: docs/import.md.")
    p.add_argument("description", help="description CSV (paths inside are relative to it)")
    p.add_argument("--out", required=True, help="output dataset folder (new or empty)")
    p.add_argument("--format", choices=["react", "openface"], default="react",
                   help="attribute file format (a 'format' column overrides it per line)")
    p.add_argument("--mapping", default=None,
                   help="JSON/YAML object: attribute name (AU1, ..., valence, Neutral, ...) -> "
                   "your column name; unmapped attributes get neutral defaults")
    p.add_argument("--au", dest="au_source", choices=["occurrence", "intensity"],
                   default="occurrence",
                   help="OpenFace AUs from occurrence AUxx_c (0/1) or intensity AUxx_r / 5")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate of the attribute files when they have no timestamp "
                   "column (resampled to 25 fps)")
    p.add_argument("--fractions", type=float, nargs=3, default=[0.6, 0.2, 0.2],
                   metavar=("TRAIN", "VAL", "TEST"),
                   help="target shares of the rows when the description has no split column")
    add_seed(p)
    p.add_argument("--no-neighbours", action="store_true",
                   help="do not build the appropriateness matrices")
    p.add_argument("--force", action="store_true",
                   help="replace a non-empty OUT (only once the new import is complete)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from regnn.data.importer import finish, import_dataset, load_mapping
    from regnn.data.splits import write_matrices
    from regnn.errors import ConfigError, DataError
    from regnn.utils.io import staged_folder

    if args.fps is not None and not args.fps > 0:
        raise ConfigError(f"--fps must be positive, got {args.fps}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise ConfigError(f"{out} is not empty; pass --force to replace it (the old content "
                          "stays until the new import is complete)")
    mapping = load_mapping(args.mapping)
    try:  # built beside OUT and moved into place when complete: a failure changes nothing
        with staged_folder(out, replace=args.force) as build:
            summary = import_dataset(args.description, build, args.format, mapping,
                                     args.au_source, args.fps, args.fractions, args.seed,
                                     progress=sys.stderr.isatty())
            summary["root"] = str(out)
            if not args.no_neighbours:
                write_matrices(build, force=True, progress=sys.stderr.isatty())
            finish(build, summary)
    except OSError as exc:
        raise DataError(f"cannot write the import: {exc.strerror or exc} (nothing was "
                        "changed)", path=getattr(exc, "filename", None) or out,
                        kind="write-failed") from None
    print(f"imported {summary['persons']} person clips into {args.out} "
          f"(splits from {summary['split_from']}):")
    for split, s in summary["splits"].items():
        print(f"  {split:<6} {s['rows']:>5} rows  {s['items']:>5} items")
    for w in summary["warnings"]:
        print(f"regnn data import: warning: {w}", file=sys.stderr)
    print(f"check it with: regnn data check {args.out}")
    return 0

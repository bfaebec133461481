"""The ``regnn`` command line.

Each command lives in its own module under :mod:`regnn.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable taking the
parsed ``argparse.Namespace`` and returning an exit status). Adding a command means adding a
module and one line to :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from regnn import __version__
from regnn.errors import RegnnError
from regnn.mkl import apply_vendor_fix

COMMAND_MODULES: tuple[str, ...] = (
    "regnn.commands.synth",
    "regnn.commands.data",
    "regnn.commands.demo",
    "regnn.commands.render",
    "regnn.commands.report",
    "regnn.commands.train",
    "regnn.commands.generate",
    "regnn.commands.bench",
    "regnn.commands.baseline",
    "regnn.commands.evaluate",
    "regnn.commands.serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regnn",
        description=(
            "Multiple appropriate facial reaction generation (REGNN) on the REACT data "
            "layout: synthesise data, train, generate K reactions, evaluate, render."
        ),
    )
    parser.add_argument("--version", action="version", version=f"regnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # an entry point: the process-wide MKL tweak, before a command module imports torch
    apply_vendor_fix()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except RegnnError as exc:
        print(f"regnn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"regnn {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

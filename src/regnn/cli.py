"""The ``regnn`` command line.

Each command lives in its own module under :mod:`regnn.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable taking the
parsed ``argparse.Namespace`` and returning an exit status). The modules import their heavy
dependencies inside ``run``, so importing them all here costs little. Adding a command means
adding a module and one entry to :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from regnn import __version__
from regnn.commands import (
    baseline,
    bench,
    data,
    demo,
    evaluate,
    export,
    generate,
    render,
    report,
    serve,
    synth,
    train,
)
from regnn.errors import RegnnError
from regnn.mkl import apply_vendor_fix

#: the command modules, in the order ``regnn --help`` lists them
COMMANDS: tuple[ModuleType, ...] = (
    synth, data, demo, render, report, train, generate, bench, baseline, evaluate, serve,
    export,
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
    for module in COMMANDS:
        module.register(sub)
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

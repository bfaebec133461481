"""Options shared by several commands."""

from __future__ import annotations

import argparse


def add_seed(parser: argparse.ArgumentParser, default: int = 0) -> None:
    parser.add_argument(
        "--seed", type=int, default=default,
        help=f"random seed; the same seed gives the same output (default {default})",
    )


def subcommand(sub: argparse._SubParsersAction, name: str, help: str, description: str | None = None
               ) -> argparse.ArgumentParser:
    """Add a sub-parser whose ``--help`` shows ``description`` (or ``help``)."""
    return sub.add_parser(
        name, help=help, description=description or help,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

"""The `protoviz` command line: each subcommand lives in its own module of this package.

A subcommand module defines ``register(subparsers)`` which adds its parser and sets
``func=run`` as the default; ``run(args) -> int`` does the work.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from protoviz.errors import ProtovizError

# Order shown in `protoviz --help`.
COMMANDS: tuple[str, ...] = ("info", "cards", "synth", "train", "compare", "explain", "evaluate", "trust", "convert",
                             "project")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="protoviz", description="See, check and compare part-prototype networks.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"protoviz.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `protoviz` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ProtovizError as error:
        print(f"protoviz {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

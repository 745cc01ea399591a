"""The `protoviz` command line: each subcommand lives in its own module of this package.

A subcommand module defines ``register(subparsers)`` which adds its parser and sets
``func=run`` as the default; ``run(args) -> int`` does the work.

Only the chosen subcommand's module is imported (the others get a one-line stub parser for the
listing), so ``protoviz --help`` answers without importing torch. Under ``torchrun`` the commands that
shard (``evaluate``, ``explain``, ``compare``) split their images over the ranks (see README).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from protoviz.errors import ProtovizError

# Order shown in `protoviz --help`, with the line shown there.
COMMANDS: dict[str, str] = {
    "info": "describe a checkpoint (native or research format)",
    "cards": "per-image 'this looks like that' figures and tables for images, folders or a dataset",
    "synth": "generate the synthetic part-annotated bird dataset",
    "train": "train a native ProtoPNet on a CUB-layout or ImageFolder dataset",
    "compare": "compare models on the same images; match their prototypes",
    "explain": "global colour/shape/texture/contrast/saturation importance",
    "evaluate": "consistency, stability, accuracy ... of a model over a dataset",
    "trust": "sanity checks and faithfulness of the heatmap methods",
    "convert": "convert a research checkpoint to protoviz's .safetensors format",
    "project": "find each prototype's source patch on a training set (no weight changes) and save the model "
               "with its sources",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; ``command`` (or every command, for None) gets its full options, the others a stub."""
    parser = argparse.ArgumentParser(prog="protoviz", description="See, check and compare part-prototype networks.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, line in COMMANDS.items():
        if command is None or name == command:
            importlib.import_module(f"protoviz.cli.{name}").register(subparsers)
        else:
            subparsers.add_parser(name, help=line)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `protoviz` console script; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    chosen = arguments[0] if arguments and arguments[0] in COMMANDS else ""
    args = build_parser(chosen).parse_args(arguments)
    try:
        return int(args.func(args))
    except ProtovizError as error:
        print(f"protoviz {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

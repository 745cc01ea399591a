"""Command-line options for what a research checkpoint cannot tell (see :mod:`protoviz.models.hints`)."""

from __future__ import annotations

import argparse

from protoviz.models.hints import ACTIVATIONS, BACKBONE_HINTS, SLOTS


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--slots``, ``--activation`` and ``--backbone`` to a subcommand that loads a checkpoint."""
    parser.add_argument("--slots", choices=SLOTS, default=None,
                        help="ProtoPool slot mode: soft = softmax(proto_presence), the repository's forward(x); "
                             "hard = argmax, as after push (default: hard if the file name contains 'push', else soft)")
    parser.add_argument("--activation", choices=ACTIVATIONS, default=None,
                        help="ProtoPNet/ProtoPool prototype_activation_function, for state dicts that do not "
                             "record it (default: log)")
    parser.add_argument("--backbone", choices=BACKBONE_HINTS, default=None,
                        help="PIP-Net ConvNeXt stride variant (default: the run folder's metadata/args.txt, "
                             "else convnext_tiny_26)")


def load_hints(args: argparse.Namespace) -> dict[str, str | None]:
    """The hints given on the command line, as keyword arguments of ``load_model``."""
    return {name: getattr(args, name) for name in ("slots", "activation", "backbone")
            if getattr(args, name, None) is not None}

"""Command-line options for what a research checkpoint cannot tell (see :mod:`protoviz.models.hints`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from protoviz.models.hints import ACTIVATIONS, BACKBONE_HINTS, SLOTS

if TYPE_CHECKING:
    import torch

    from protoviz.models.base import PrototypeModel


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


class HintArgs(TypedDict, total=False):
    """The load hints a command line can give, as keyword arguments of ``load_model``."""

    slots: str
    activation: str
    backbone: str


def load_hints(args: argparse.Namespace) -> HintArgs:
    """The hints given on the command line (those left unset are absent)."""
    hints = HintArgs()
    if getattr(args, "slots", None) is not None:
        hints["slots"] = args.slots
    if getattr(args, "activation", None) is not None:
        hints["activation"] = args.activation
    if getattr(args, "backbone", None) is not None:
        hints["backbone"] = args.backbone
    return hints


def load_checkpoint(path: Path, args: argparse.Namespace, device: torch.device | str | None = None) -> PrototypeModel:
    """``load_model`` with the command line's ``--family`` (where the command has one) and load hints."""
    from protoviz.models import load_model

    return load_model(path, family=getattr(args, "family", None), device=device, **load_hints(args))

"""`protoviz info CKPT`: what a checkpoint is (family, backbone, sizes, similarity)."""

from __future__ import annotations

import argparse
import json

from protoviz.cli.load_options import add_load_options, load_hints
from protoviz.models import load_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="describe a checkpoint (native or research format)")
    parser.add_argument("checkpoint", help="a .safetensors file, a research checkpoint, or a ProtoTree folder")
    parser.add_argument("--family", default=None, help="family hint for ambiguous files (e.g. protopnet or tesnet)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_load_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = load_model(args.checkpoint, family=args.family, **load_hints(args))
    rows = model.summary().as_rows()
    rows += [(f"{name} chosen", why) for name, why in model.metadata.get("load_hints", {}).items()]
    if args.json:
        print(json.dumps(dict(rows), indent=2))
    else:
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            print(f"{name:<{width}}  {value}")
    return 0

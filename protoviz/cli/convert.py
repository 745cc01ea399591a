"""`protoviz convert IN OUT.safetensors`: rewrite a research (or native) checkpoint in the native format.

The input is read through the restricted importers (nothing in it can run); the output is one
safetensors file with the model's config, so later loads need no pickle at all.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from protoviz.cli.load_options import add_load_options, load_hints
from protoviz.errors import ConfigError
from protoviz.models import PrototypeModel, load_model
from protoviz.models.checkpoint import save_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("convert", help="convert a research checkpoint to protoviz's .safetensors format")
    parser.add_argument("input", help="research checkpoint file, ProtoTree run folder, or .safetensors file")
    parser.add_argument("output", help="where to write the .safetensors file")
    parser.add_argument("--family", default=None,
                        help="family hint for ambiguous files (protopnet or tesnet state dicts)")
    parser.add_argument("--class-names", default=None,
                        help="comma-separated class names to store instead of class_0, class_1, ...")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    add_load_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.suffix != ".safetensors":
        raise ConfigError(f"the output must end in .safetensors, got {output.name}")
    if output.exists() and not args.force:
        raise ConfigError(f"{output} exists; pass --force to overwrite it")
    model = load_model(args.input, family=args.family, **load_hints(args))
    if args.class_names:
        names = tuple(n.strip() for n in args.class_names.split(","))
        if len(names) != model.num_classes:
            raise ConfigError(f"--class-names gives {len(names)} names for a model with {model.num_classes} classes")
        model = _renamed(model, names)
    save_model(model, output, extra={"converted_from": str(args.input)})
    summary = model.summary()
    print(f"wrote {output}: {summary.family}, {summary.num_prototypes} prototypes, {summary.num_classes} classes, "
          f"maps {summary.map_size[0]}x{summary.map_size[1]}")
    return 0


def _renamed(model: PrototypeModel, names: tuple[str, ...]) -> PrototypeModel:
    """The same model with other class names (rebuilt from its config, weights copied)."""
    config = dict(model.config_dict(), class_names=list(names))
    renamed = type(model).from_config(config)
    renamed.load_state_dict(model.state_dict())
    renamed.prototype_sources, renamed.metadata = model.prototype_sources, model.metadata
    return renamed.eval()

"""`protoviz convert IN OUT.safetensors`: rewrite a research (or native) checkpoint in the native format.

The input is read through the restricted importers (nothing in it can run); the output is one
safetensors file with the model's config, so later loads need no pickle at all. With ``--push-dir`` and
``--data`` it also imports the prototype sources the original push wrote (see
:mod:`protoviz.sources.pushdir`); ``--classes`` names the classes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from protoviz.cli.load_options import add_load_options, load_hints
from protoviz.data.classnames import is_placeholder, read_class_names, with_class_names
from protoviz.device import pick_device
from protoviz.errors import ConfigError
from protoviz.models import PrototypeModel, load_model
from protoviz.models.checkpoint import save_model
from protoviz.progress import console_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("convert", help="convert a research checkpoint to protoviz's .safetensors format")
    parser.add_argument("input", help="research checkpoint file, ProtoTree run folder, or .safetensors file")
    parser.add_argument("output", help="where to write the .safetensors file")
    parser.add_argument("--family", default=None,
                        help="family hint for ambiguous files (protopnet or tesnet state dicts)")
    parser.add_argument("--class-names", default=None,
                        help="comma-separated class names to store instead of class_0, class_1, ...")
    parser.add_argument("--classes", default=None,
                        help="class names from CUB's classes.txt, a text file (one per line) or a folder of "
                             "class folders (default with --data: its folder names when the model has none)")
    parser.add_argument("--push-dir", default=None,
                        help="what the original push wrote (ProtoPNet/TesNet img/ or img/epoch-N/, ST-ProtoPNet's "
                             "model folder, ProtoPool img_proto/<run>/, ProtoTree upsampling_results/, PIP-Net "
                             "log folder); needs --data")
    parser.add_argument("--data", default=None,
                        help="the push images as an ImageFolder (DIR/<class>/<image>), the folder the push read")
    parser.add_argument("--push-epoch", type=int, default=None,
                        help="which epoch-N of the push folder (default: the checkpoint name's, else the latest)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    add_load_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    output = checked_output(args.output, args.force)
    if args.push_dir and not args.data:
        raise ConfigError("--push-dir needs --data, the image folder the push read (to resolve its image indices)")
    model = load_model(args.input, family=args.family, device=pick_device(args.device), **load_hints(args))
    notes: list[str] = []
    if args.push_dir:
        from protoviz.sources import attach_sources, import_push_folder

        imported = import_push_folder(model, args.push_dir, args.data, epoch=args.push_epoch,
                                      batch_size=args.batch_size, progress=console_progress(),
                                      checkpoint_name=Path(args.input).name)
        model = attach_sources(model, imported.sources, "push-folder", args.data, push_dir=str(args.push_dir),
                               layout=imported.layout, epoch=imported.epoch)
        notes = imported.summary()
    model = names_from(model, args.classes, args.class_names, args.data)
    save_model(model, output, extra={"converted_from": str(args.input)})
    summary = model.summary()
    print(f"wrote {output}: {summary.family}, {summary.num_prototypes} prototypes, {summary.num_classes} classes, "
          f"maps {summary.map_size[0]}x{summary.map_size[1]}")
    for line in notes:
        print(f"  {line}")
    return 0


def checked_output(output: str | Path, force: bool) -> Path:
    """The output path, refused unless it ends in .safetensors and is new (or ``force``)."""
    path = Path(output)
    if path.suffix != ".safetensors":
        raise ConfigError(f"the output must end in .safetensors, got {path.name}")
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it")
    return path


def names_from(model: PrototypeModel, classes: str | None, comma_names: str | None,
               data: str | None) -> PrototypeModel:
    """The model with class names from ``--classes``, ``--class-names``, or (when it has only
    placeholders) the class folders of ``--data``."""
    if classes and comma_names:
        raise ConfigError("give either --classes or --class-names, not both")
    if comma_names:
        return with_class_names(model, [n.strip() for n in comma_names.split(",")])
    if classes:
        return with_class_names(model, read_class_names(classes, model.num_classes))
    if data and is_placeholder(model.class_names):
        return with_class_names(model, read_class_names(data, model.num_classes))
    return model

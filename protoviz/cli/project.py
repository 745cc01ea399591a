"""`protoviz project IN OUT.safetensors --data TRAIN_DIR`: find every prototype's source on a training set.

For each prototype, its nearest latent patch among the images its family's push may use (own class for
ProtoPNet, TesNet and ST-ProtoPNet; the classes whose slots use it for ProtoPool; the leaves under its
node for ProtoTree; every image for PIP-Net), in one streaming pass. No weight changes. For a model
pushed on the same folder this is the patch the push chose, at latent distance ~0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from protoviz.cli.convert import checked_output, names_from
from protoviz.cli.load_options import add_load_options, load_hints
from protoviz.device import pick_device
from protoviz.models import load_model
from protoviz.models.checkpoint import save_model
from protoviz.progress import console_progress
from protoviz.sources import attach_sources, project_sources


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("project", help="find each prototype's source patch on a training set "
                                                   "(no weight changes) and save the model with its sources")
    parser.add_argument("input", help="a research checkpoint, ProtoTree folder or .safetensors file")
    parser.add_argument("output", help="where to write the .safetensors file")
    parser.add_argument("--data", required=True,
                        help="the training (push) images as an ImageFolder: DIR/<class>/<image>, classes in "
                             "the model's order (sorted folder names)")
    parser.add_argument("--classes", default=None,
                        help="class names: CUB classes.txt, a text file (one per line) or a folder of class "
                             "folders (default: the --data folder names when the model has none)")
    parser.add_argument("--family", default=None, help="family hint for ambiguous files (protopnet or tesnet)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    add_load_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    output = checked_output(args.output, args.force)
    model = load_model(args.input, family=args.family, device=pick_device(args.device), **load_hints(args))
    projection = project_sources(model, args.data, batch_size=args.batch_size, progress=console_progress())
    model = attach_sources(model, projection.sources, "projection", args.data, images=len(projection.images))
    model = names_from(model, args.classes, None, args.data)
    save_model(model, output, extra={"converted_from": str(args.input)})
    chosen = [s for s in projection.sources if s is not None]
    print(f"wrote {output}: {len(chosen)}/{model.num_prototypes} prototypes with a source among "
          f"{len(projection.images)} images")
    if chosen:
        distances = sorted(float(s.distance) for s in chosen if s.distance is not None)
        print(f"latent distance to the source patch ({chosen[0].distance_kind}): min {distances[0]:.4g}, "
              f"median {distances[len(distances) // 2]:.4g}, max {distances[-1]:.4g}")
    missing = model.num_prototypes - len(chosen)
    if missing:
        print(f"{missing} prototypes have no eligible image in {Path(args.data)} (no image of a class "
              "they may be projected onto)")
    return 0

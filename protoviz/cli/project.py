"""`protoviz project IN OUT.safetensors --data TRAIN_DIR`: find every prototype's source on a training set.

For each prototype, its nearest latent patch among the images its family's push may use (own class for
ProtoPNet, TesNet and ST-ProtoPNet; the classes whose slots use it for ProtoPool; the leaves under its
node for ProtoTree; every image for PIP-Net), in one streaming pass. No weight changes. For a model
pushed on the same folder this is the patch the push chose, at latent distance ~0.

Sharded like ``evaluate``: ``torchrun --nproc_per_node N -m protoviz project IN OUT --data DIR`` splits the
images across the ranks (whole batches), merges the per-prototype bests on rank 0, which describes the
sources and writes the one output file. The result equals one process's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from protoviz.cli.convert import checked_output, names_from
from protoviz.cli.load_options import add_load_options, load_checkpoint
from protoviz.device import pick_device
from protoviz.distributed import ShardGroup, run_in_group
from protoviz.models.checkpoint import save_model
from protoviz.progress import console_progress
from protoviz.sources import attach_sources, project_shard


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
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (under torchrun: cpu "
                                                          "or cuda; each rank takes cuda:LOCAL_RANK)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    add_load_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_in_group(args.device, lambda group: _run(args, group))


def _run(args: argparse.Namespace, group: ShardGroup | None) -> int:
    main = group is None or group.is_main
    output = checked_output(args.output, args.force)  # on every rank: a refusal stops them all
    device = group.device if group is not None else pick_device(args.device)
    model = load_checkpoint(args.input, args, device)
    progress = None if args.quiet or not main else console_progress()
    projection = project_shard(model, args.data, batch_size=args.batch_size, progress=progress, group=group)
    if projection is None:
        return 0
    model = attach_sources(model, projection.sources, "projection", args.data, images=len(projection.images))
    model = names_from(model, args.classes, None, args.data)
    save_model(model, output, extra={"converted_from": str(args.input)})
    chosen = [s for s in projection.sources if s is not None]
    ranks = f" ({group.world_size} ranks)" if group is not None else ""
    print(f"wrote {output}: {len(chosen)}/{model.num_prototypes} prototypes with a source among "
          f"{len(projection.images)} images{ranks}")
    if chosen:
        distances = sorted(float(s.distance) for s in chosen if s.distance is not None)
        print(f"latent distance to the source patch ({chosen[0].distance_kind}): min {distances[0]:.4g}, "
              f"median {distances[len(distances) // 2]:.4g}, max {distances[-1]:.4g}")
    missing = model.num_prototypes - len(chosen)
    if missing:
        print(f"{missing} prototypes have no eligible image in {Path(args.data)} (no image of a class "
              "they may be projected onto)")
    return 0

"""`protoviz evaluate CKPT --data DIR`: dataset-wide scores (consistency, stability, accuracy, ...).

The metric list, its help and the defaults come from the metric registry. Under ``torchrun`` the images
are split over the ranks and rank 0 prints and writes the one result (see README).

``--as published`` evaluates the images as EvalProtoPNet did (crops written as JPEG and read back,
keypoints truncated with int(), see protoviz.data.published); ``--as clean`` crops in memory. The
default is the paper's path where a paper's number exists: ``published`` for a CUB-layout folder cropped
to its boxes, ``clean`` for the bundled synthetic set, other layouts and ``--no-crop``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from protoviz.cli.load_options import add_load_options, load_checkpoint
from protoviz.data.datasets import KINDS, ImageDataset, open_dataset
from protoviz.data.published import PATHS, WHY_THEY_DIFFER, dataset_for_path, paper_path
from protoviz.device import pick_device
from protoviz.distributed import ShardGroup, run_in_group
from protoviz.metrics.config import PARAMETER_HELP, PartMetricConfig
from protoviz.metrics.export import to_csv, to_json
from protoviz.metrics.registry import default_metrics, metric_help
from protoviz.metrics.runner import EvaluationConfig, EvaluationResult, evaluate_shard
from protoviz.progress import console_progress

SYNTHETIC = "synthetic"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="consistency, stability, accuracy ... of a model over a dataset",
        description="Dataset-wide scores of a prototype model. Defaults reproduce Huang et al.'s reference. "
                    "Run under torchrun to split the images over several processes or GPUs.",
        epilog="metrics: " + "; ".join(f"{k}: {v}" for k, v in metric_help().items()))
    parser.add_argument("checkpoint", help="a .safetensors file or a research checkpoint")
    parser.add_argument("--data", required=True,
                        help=f"dataset folder (CUB layout, Stanford Cars/Dogs, ImageFolder) or '{SYNTHETIC}' for the "
                             "bundled synthetic set (generated once into the cache folder)")
    parser.add_argument("--kind", default="auto", choices=KINDS, help="dataset layout (default: detect)")
    parser.add_argument("--split", default="test", choices=("test", "train", "all"))
    parser.add_argument("--no-crop", dest="crop", action="store_false",
                        help="use the whole image, with part coordinates scaled to the resized image, instead of "
                             "cropping each image to its bounding box first as the reference does (the default)")
    parser.add_argument("--as", dest="path", default=None, choices=PATHS,
                        help="data path: 'published' evaluates crops written and re-read as JPEG with int() "
                             "keypoints as EvalProtoPNet did (reproduces the paper's numbers); 'clean' crops in "
                             "memory (the better-founded numbers). Default: published for a CUB-layout folder "
                             f"cropped to its boxes, clean otherwise (and for '{SYNTHETIC}')")
    parser.add_argument("--metrics", default=None,
                        help="comma-separated (default: the registry's defaults the dataset allows: "
                             "accuracy,consistency,stability with parts, accuracy,region_stability without)")
    parser.add_argument("--json", type=Path, default=None, help="write scores, per-prototype results and provenance")
    parser.add_argument("--csv", type=Path, default=None, help="write one row per prototype")
    parser.add_argument("--limit", type=int, default=None, help="evaluate N images evenly spaced over the dataset")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (under torchrun: auto, cpu "
                                                         "or cuda; each rank takes cuda:LOCAL_RANK)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--family", default=None, help="family hint for ambiguous checkpoints")
    defaults = PartMetricConfig()
    parser.add_argument("--seed", type=int, default=defaults.seed, help=PARAMETER_HELP["seed"])
    parser.add_argument("--half-size", type=float, default=defaults.half_size, help=PARAMETER_HELP["half_size"])
    parser.add_argument("--mu", type=float, default=defaults.mu, help=PARAMETER_HELP["mu"])
    parser.add_argument("--noise-std", type=float, default=defaults.noise_std, help=PARAMETER_HELP["noise_std"])
    parser.add_argument("--noise-clip", type=float, default=defaults.noise_clip, help=PARAMETER_HELP["noise_clip"])
    parser.add_argument("--draws", type=int, default=defaults.noise_draws, help=PARAMETER_HELP["noise_draws"])
    parser.add_argument("--merge-left-right", action="store_true", help=PARAMETER_HELP["merge_left_right"])
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    add_load_options(parser)
    parser.set_defaults(func=run)


def open_data(data: str, kind: str, split: str, crop: bool, path: str | None = "clean") -> ImageDataset:
    """The dataset at ``data``, or the bundled synthetic set for ``'synthetic'``, on data path ``path``
    (None: :func:`~protoviz.data.published.paper_path`, clean for the synthetic set)."""
    if data == SYNTHETIC:
        from protoviz.data.demo import synthetic_dataset

        folder = synthetic_dataset()
    else:
        folder = Path(data).expanduser()
    dataset = open_dataset(folder, kind=kind, split=split, crop_to_box=crop)
    if path is None:
        path = "clean" if data == SYNTHETIC else paper_path(dataset)
    return dataset_for_path(dataset, path)


def config_from(args: argparse.Namespace, dataset: ImageDataset) -> EvaluationConfig:
    if args.metrics:
        metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    else:
        metrics = default_metrics(dataset)
    parts = PartMetricConfig(half_size=args.half_size, mu=args.mu, noise_std=args.noise_std,
                             noise_clip=args.noise_clip if args.noise_clip and args.noise_clip > 0 else None,
                             seed=args.seed, noise_draws=args.draws, merge_left_right=args.merge_left_right)
    return EvaluationConfig(metrics=metrics, parts=parts, batch_size=args.batch_size, limit=args.limit)


def run(args: argparse.Namespace) -> int:
    return run_in_group(args.device, lambda group: _run(args, group))


def _run(args: argparse.Namespace, group: ShardGroup | None) -> int:
    device = group.device if group is not None else pick_device(args.device)
    main = group is None or group.is_main
    model = load_checkpoint(args.checkpoint, args, device)
    dataset = open_data(args.data, args.kind, args.split, args.crop, args.path)
    config = config_from(args, dataset)
    if not dataset.has_parts and not args.quiet and main:
        print(f"note: part metrics unavailable: {dataset.parts_reason}", file=sys.stderr)
    progress = None if args.quiet or not main else console_progress()
    result = evaluate_shard(model, dataset, config, progress, group=group)
    if result is not None:
        write(result, Path(args.checkpoint).name, dataset, args)
    return 0


def write(result: EvaluationResult, name: str, dataset: ImageDataset, args: argparse.Namespace) -> None:
    """Print the scores with their units; write the JSON and CSV files asked for."""
    prov = result.provenance
    ranks = f", {prov.world_size} ranks" if prov.world_size > 1 else ""
    print(f"{name} on {dataset.root} ({dataset.kind}, {dataset.split}, {prov.images} images, {prov.device}{ranks})")
    published = getattr(dataset, "path", "clean") == "published"
    label = "as published (EvalProtoPNet)" if published else "clean (in memory)"
    print(f"  data path: {label}{'' if args.path else ', the default here'}; --as "
          f"{'clean' if published else 'published'} for the other. Why they differ: {WHY_THEY_DIFFER}")
    width = max(len(k) for k in result.scores)
    units = result.units
    for key, value in result.scores.items():
        print(f"  {key:<{width}}  {value:.4f} {units[key]}")
    if args.json:
        args.json.write_text(to_json({name: result}), encoding="utf-8")
    if args.csv:
        args.csv.write_text(to_csv({name: result}), encoding="utf-8")

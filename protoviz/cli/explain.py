"""`protoviz explain CKPT --data DIR --mode fast|reference --as clean|published --out results/`: global
characteristic importance.

``--as published`` (the default with ``--mode reference``) reproduces Nauta et al.'s numbers: crops and
every modified image are written and re-read as JPEG as their code did (see protoviz.data.published and
the ``Codec`` of each registered characteristic); ``--as clean`` keeps everything in memory.

Runs the global explanation (hue, shape, texture, contrast, saturation, brightness per prototype) over
every image of a dataset split, printing progress, and writes ``characteristics.csv`` and
``characteristics.json`` (with parameters, mode, seed, model, versions, device) into ``--out``. Without
``--data`` the bundled synthetic test set is generated into the cache folder and used. Under ``torchrun``
the images are split over the ranks; rank 0 merges the sums and writes the files.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from protoviz.cli.load_options import add_load_options, load_checkpoint
from protoviz.data.datasets import open_dataset
from protoviz.data.published import dataset_for_path
from protoviz.device import pick_device
from protoviz.distributed import ShardGroup, run_in_group
from protoviz.errors import ConfigError, ModelError
from protoviz.explain.characteristics import list_characteristics, list_regions
from protoviz.explain.export import provenance, write_global
from protoviz.explain.extras import agreement, redundancy
from protoviz.explain.global_ import explain_shard
from protoviz.explain.params import CHARACTERISTICS, MODES, PATHS, ExplainConfig, ModificationParams
from protoviz.progress import console_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("explain", help="global colour/shape/texture/contrast/saturation importance")
    parser.add_argument("checkpoint", help="a model checkpoint (.safetensors or a research format)")
    parser.add_argument("--data", default=None, help="dataset folder (CUB layout or ImageFolder); "
                                                     "default: the bundled synthetic test set")
    parser.add_argument("--mode", default=None, choices=MODES,
                        help="fast (default): batched tensor ops on the device; reference: PIL/OpenCV as published")
    parser.add_argument("--as", dest="path", default=None, choices=PATHS,
                        help="data path: 'clean' keeps images in memory (the better-founded numbers); 'published' "
                             "writes and re-reads every crop and modified image as JPEG as the published code did "
                             "(reproduces Nauta et al.'s numbers; implies --mode reference). Default: published "
                             "with --mode reference, else clean")
    parser.add_argument("--characteristics", default=None,
                        help="comma-separated registered characteristics, combinations a+b, noise floors floor:a "
                             f"(default: {','.join(CHARACTERISTICS)}; registered: {','.join(list_characteristics())})")
    parser.add_argument("--region", default="whole", choices=list_regions(),
                        help="where each modification is applied: the whole image (default, Nauta et al.), only "
                             "inside / outside each prototype's high-activation box, or weighted by its heatmap "
                             "(focus) or its complement (dual); regions other than whole cost one forward per "
                             "image, prototype and modification")
    parser.add_argument("--prototypes", default=None,
                        help="comma-separated prototype indices a region run explains (default: all)")
    parser.add_argument("--heatmap-method", default="upsample",
                        help="the heatmap method that weights focus and dual (a registered method)")
    parser.add_argument("--floors", action="store_true",
                        help="also run every characteristic at its neutral strength (a noise floor per characteristic)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    parser.add_argument("--split", default="test", choices=("test", "train", "all"))
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch (each sent with 6 variants)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (under torchrun: auto, cpu "
                                                         "or cuda; each rank takes cuda:LOCAL_RANK)")
    parser.add_argument("--family", default=None, help="family hint for ambiguous research checkpoints")
    parser.add_argument("--noise-floor", action="store_true", help="also run the identity modification")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a modification strength other than the reference value, e.g. contrast=0.5 or "
                             "texture_h=10 (fields of ModificationParams); repeatable")
    parser.add_argument("--no-crop", action="store_true", help="do not crop CUB-layout images to their boxes")
    parser.add_argument("--agreement-split", default=None, choices=("train", "test", "all"),
                        help="also explain this split and report, per prototype, the correlation of the two "
                             "global explanations (e.g. train vs test)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    add_load_options(parser)
    parser.set_defaults(func=run)


def parse_params(items: list[str]) -> ModificationParams:
    """``["contrast=0.5", ...]`` -> ModificationParams with those fields changed."""
    values = ModificationParams().to_dict()
    for item in items:
        name, _, text = item.partition("=")
        if name not in values or not text:
            raise ConfigError(f"--param expects NAME=VALUE with NAME one of {sorted(values)}, got {item!r}")
        kind = type(values[name])
        try:
            values[name] = kind(text)
        except ValueError as error:
            raise ConfigError(f"--param {name}: expected a {kind.__name__}, got {text!r}") from error
    return ModificationParams(**values)


def parse_prototypes(text: str | None) -> list[int] | None:
    """``"3,5"`` -> [3, 5]; None or empty -> None (all prototypes)."""
    if not text or not text.strip():
        return None
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError as error:
        raise ConfigError(f"--prototypes expects comma-separated indices, got {text!r}") from error


def resolve_path(mode: str | None, path: str | None) -> tuple[str, str]:
    """(mode, data path) from the flags: ``--as published`` implies the reference mode, ``--mode
    reference`` alone defaults to the published path (a paper's number), everything else is clean."""
    if path == "published" and mode == "fast":
        raise ConfigError("--as published re-encodes the reference modifications; use it with --mode reference "
                          "(or without --mode)")
    if path is None:
        path = "published" if mode == "reference" else "clean"
    return (mode or ("reference" if path == "published" else "fast")), path


def _finite(value: float) -> float | None:
    """JSON has no NaN: a correlation of a constant vector is written as null."""
    return None if math.isnan(value) else float(value)


def run(args: argparse.Namespace) -> int:
    return run_in_group(args.device, lambda group: _run(args, group))


def _run(args: argparse.Namespace, group: ShardGroup | None) -> int:
    device = group.device if group is not None else pick_device(args.device)
    main = group is None or group.is_main
    model = load_checkpoint(args.checkpoint, args, device)
    if args.data is None:
        from protoviz.data.demo import synthetic_dataset
        data = synthetic_dataset()
    else:
        data = Path(args.data)
    mode, path = resolve_path(args.mode, args.path)
    dataset = dataset_for_path(open_dataset(data, split=args.split, crop_to_box=not args.no_crop), path)
    names = tuple(n.strip() for n in (args.characteristics or "").split(",") if n.strip()) or CHARACTERISTICS
    config = ExplainConfig(mode=mode, path=path, names=names, noise_floor=args.noise_floor, floors=args.floors,
                           params=parse_params(args.param), region=args.region, heatmap_method=args.heatmap_method)
    prototypes = parse_prototypes(args.prototypes)
    info = provenance(model, Path(args.checkpoint).stem, {**dataset.describe(), "limit": args.limit}, config.seed)
    progress: Any = None if args.quiet or not main else console_progress()
    result = explain_shard(model, dataset, config, args.batch_size, args.limit, progress, info, group=group,
                           prototypes=prototypes)
    second = None
    if args.agreement_split:
        other = dataset_for_path(open_dataset(data, split=args.agreement_split, crop_to_box=not args.no_crop), path)
        second = explain_shard(model, other, config, args.batch_size, args.limit, progress, group=group,
                               prototypes=prototypes)
    if result is None:
        return 0
    csv_path, json_path = write_global(result, args.out, model)
    try:
        flagged = [vars(pair) for pair in redundancy(result, model)]
    except ModelError:
        flagged = []
    document = json.loads(json_path.read_text(encoding="utf-8"))
    document["redundant_pairs"] = flagged
    if second is not None:
        together = agreement(result, second)
        document["agreement"] = {"split": args.agreement_split, "images": second.num_images,
                                 "median_pearson": _finite(together.median_pearson),
                                 "median_spearman": _finite(together.median_spearman),
                                 "pearson": [_finite(v) for v in together.pearson.tolist()],
                                 "spearman": [_finite(v) for v in together.spearman.tolist()]}
        print(f"agreement with the {args.agreement_split} split: median Spearman {together.median_spearman:.2f}, "
              f"median Pearson {together.median_pearson:.2f} over {result.num_prototypes} prototypes")
    json_path.write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
    print(f"wrote {csv_path} and {json_path} ({result.num_images} images, {result.num_prototypes} prototypes, "
          f"mode {mode}, {path} path, region {config.region}; {len(flagged)} redundant pair(s) flagged)")
    return 0

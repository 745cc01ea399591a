"""`protoviz compare A.safetensors B.safetensors --data DIR --report out.html`: models side by side.

One batched pass per model over the same images gives accuracy (%), top-k patches per prototype and
activation profiles; prototypes are matched against the first model (correlation + Hungarian) and
near-duplicates flagged within each model. Without ``--data`` the bundled synthetic test set is
generated into the cache folder and used. ``--images`` adds those images, explained by every model,
to the report. Under ``torchrun`` the probe images are split over the ranks; rank 0 writes the result.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from protoviz.cli.load_options import add_load_options, load_checkpoint
from protoviz.compare.latent import latent_view
from protoviz.compare.matching import DUPLICATE_THRESHOLD, PROFILE_HELP, PROFILE_KINDS, ProfileConfig
from protoviz.compare.report import comparison_report
from protoviz.compare.summary import (
    ACCURACY_COLUMN,
    CompareConfig,
    Comparison,
    compare_shard,
    open_probe_dataset,
    scores_table,
)
from protoviz.compare.topk import TopKConfig
from protoviz.data.images import load_image
from protoviz.device import pick_device
from protoviz.distributed import ShardGroup, run_in_group
from protoviz.errors import ConfigError
from protoviz.heatmaps import explain_image
from protoviz.models.base import PrototypeModel
from protoviz.progress import console_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compare", help="compare models on the same images; match their prototypes")
    parser.add_argument("checkpoints", nargs="+", help="two or more checkpoints (the first is the reference)")
    parser.add_argument("--data", default=None, help="dataset folder (CUB layout or ImageFolder); "
                                                     "default: the bundled synthetic test set")
    parser.add_argument("--split", default="test", choices=("test", "train", "all"))
    parser.add_argument("--max-images", type=int, default=None, help="probe a seeded random subset of N images")
    parser.add_argument("--k", type=int, default=5, help="top-k patches per prototype")
    parser.add_argument("--per-image", default="best", choices=("best", "all"),
                        help="'best': k patches from k different images; 'all': any cells")
    parser.add_argument("--profile", default=ProfileConfig.kind, choices=PROFILE_KINDS,
                        help="prototype profile used to match and to find duplicates: "
                             + "; ".join(f"{k}: {v}" for k, v in PROFILE_HELP.items()))
    parser.add_argument("--threshold", type=float, default=0.5, help="minimum correlation of a matched pair")
    parser.add_argument("--duplicate-threshold", type=float, default=DUPLICATE_THRESHOLD,
                        help="profile correlation and embedding cosine above which (both) two prototypes are "
                             "near-duplicates")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (under torchrun: auto, cpu "
                                                         "or cuda; each rank takes cuda:LOCAL_RANK)")
    parser.add_argument("--images", nargs="*", type=Path, default=[],
                        help="images to show side by side in the report (predictions, top prototypes, heatmaps)")
    parser.add_argument("--report", type=Path, default=None, help="write a self-contained HTML report here")
    parser.add_argument("--json", type=Path, default=None, help="write scores, matches and the record as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    add_load_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if len(args.checkpoints) < 2:
        raise ConfigError("compare needs at least two checkpoints")
    return run_in_group(args.device, lambda group: _run(args, group))


def _run(args: argparse.Namespace, group: ShardGroup | None) -> int:
    device = group.device if group is not None else pick_device(args.device)
    main = group is None or group.is_main
    models = {}
    for path in args.checkpoints:
        name = Path(path).stem
        while name in models:
            name += "'"
        models[name] = load_checkpoint(path, args, device)
    dataset = _open(args.data, args.split, main)
    config = CompareConfig(
        topk=TopKConfig(k=args.k, per_image=args.per_image), profile=ProfileConfig(kind=args.profile),
        match_threshold=args.threshold, duplicate_correlation=args.duplicate_threshold,
        duplicate_cosine=args.duplicate_threshold, batch_size=args.batch_size, max_images=args.max_images,
        seed=args.seed,
    )
    progress = None if args.quiet or not main else console_progress()
    comparison = compare_shard(models, dataset, config, progress, group)
    if comparison is None:
        return 0
    _print_summary(comparison)
    if args.report is not None:
        views = {run.name: latent_view(models[run.name], run.topk) for run in comparison.runs}
        names: dict[str, Sequence[str]] = {name: list(model.class_names) for name, model in models.items()}
        comparison_report(comparison, names, views, _explain(models, args.images)).save(args.report)
        print(f"wrote {args.report}")
    if args.json is not None:
        args.json.write_text(json.dumps(_as_json(comparison), indent=2, default=str), encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def _open(data: str | None, split: str, main: bool) -> Any:
    if data is None and main:
        print("using the bundled synthetic dataset (generated into the cache on first use)", file=sys.stderr)
    return open_probe_dataset(data, split)


def _explain(models: dict[str, PrototypeModel], paths: list[Path]) -> dict[str, list[Any]]:
    """Each image through every model (one batch per model): predictions and top-3 prototypes."""
    if not paths:
        return {}
    images = [load_image(path) for path in paths]
    labels = [path.name for path in paths]
    return {name: explain_image(model, images, top_k=3, names=labels) for name, model in models.items()}


def _print_summary(comparison: Comparison) -> None:
    for row in scores_table(comparison.runs):
        acc = "-" if row[ACCURACY_COLUMN] is None else f"{row[ACCURACY_COLUMN]:.1f} %"
        print(f"{row['model']}: accuracy {acc} on {row['images']} images, {row['prototypes']} prototypes, "
              f"{row['near-duplicate pairs']} near-duplicate pairs")
    for (i, j), matching in comparison.matchings.items():
        a, b = comparison.runs[i].name, comparison.runs[j].name
        mean = sum(p.correlation for p in matching.pairs) / max(1, len(matching.pairs))
        print(f"{a} vs {b}: {len(matching.pairs)} matched pairs (mean r {mean:.3f}), "
              f"{len(matching.unmatched_a)} of {a} and {len(matching.unmatched_b)} of {b} without counterpart")


def _as_json(comparison: Comparison) -> dict[str, Any]:
    return {
        "scores": scores_table(comparison.runs),
        "matchings": [{"a": comparison.runs[i].name, "b": comparison.runs[j].name, "threshold": m.threshold,
                       "pairs": [vars(p) for p in m.pairs], "weak": [vars(p) for p in m.weak],
                       "unmatched_a": list(m.unmatched_a), "unmatched_b": list(m.unmatched_b)}
                      for (i, j), m in comparison.matchings.items()],
        "near_duplicates": {run.name: [vars(p) for p in run.duplicates] for run in comparison.runs},
        "top_k": {run.name: {"images": run.topk.images.tolist(), "values": run.topk.values.tolist()}
                  for run in comparison.runs},
        "record": comparison.record,
    }

"""`protoviz cards CKPT IMAGES... --out DIR`: the per-image "this looks like that" explanation, as files.

For every image (files, folders searched recursively, or ``--data`` a dataset split) it writes the paper
figure of the Explain page (evidence for and against with colour scales, the waterfall of the class
score) as PNG / SVG / PDF, and for the whole run ``predictions.csv`` (one row per image),
``contributions.csv`` (one row per image and prototype), their ``.provenance.json`` sidecars and
``explanations.json`` (every record and how it was made). Images go through the model in batches, with
progress (rate, time left); a file that is not an image is reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import protoviz
from protoviz.cli.load_options import add_load_options, load_checkpoint
from protoviz.data.images import load_image
from protoviz.device import describe_device, pick_device
from protoviz.errors import ConfigError, DatasetError, ImageError, ProtovizError
from protoviz.heatmaps.cards import paper_figure
from protoviz.heatmaps.explanation import ImageExplanation, explain_image
from protoviz.models.base import PrototypeModel
from protoviz.models.labels import prototype_set
from protoviz.progress import console_progress
from protoviz.tables import write_csv
from protoviz.viz.export import DEFAULT_DPI, FIGURE_FORMATS, figure_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("cards", help="per-image 'this looks like that' figures and tables for images, "
                                                 "folders or a dataset")
    parser.add_argument("checkpoint", help="a .safetensors file, a research checkpoint, or a ProtoTree folder")
    parser.add_argument("images", nargs="*", type=Path, help="image files and/or folders (searched recursively)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the figures and tables")
    parser.add_argument("--data", type=Path, default=None,
                        help="a dataset folder (CUB layout, Stanford Cars/Dogs or ImageFolder) instead of / besides "
                             "IMAGES")
    parser.add_argument("--split", default="test", choices=("test", "train", "all"), help="split of --data")
    parser.add_argument("--limit", type=int, default=None,
                        help="with --data: that many images, evenly spread over the split (all classes when >= C)")
    parser.add_argument("--no-crop", dest="crop", action="store_false",
                        help="with --data: use whole images instead of cropping them to their boxes first")
    parser.add_argument("--top-k", type=int, default=5, help="cards of evidence for, and of evidence against")
    parser.add_argument("--class", dest="target", default=None,
                        help="explain this class's score (name or index) instead of the predicted class's")
    parser.add_argument("--format", dest="formats", nargs="+", default=["png"], choices=FIGURE_FORMATS,
                        help="figure file formats (several allowed)")
    parser.add_argument("--dpi", type=int, default=DEFAULT_DPI, help="resolution of PNG figures")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    parser.add_argument("--family", default=None, help="family hint for ambiguous research checkpoints")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    add_load_options(parser)
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Item:
    """One image to explain: its output name (unique, file-safe), where it came from, and how to decode it."""

    stem: str
    origin: str
    load: Callable[[], Image.Image]


def image_files(paths: Sequence[Path]) -> list[tuple[Path, Path]]:
    """(file, the folder it was found under or its own parent) for every image file among ``paths``."""
    found: list[tuple[Path, Path]] = []
    for path in paths:
        if path.is_dir():
            found += [(p, path) for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        elif path.is_file():
            found.append((path, path.parent))
        else:
            raise ConfigError(f"{path}: no such file or folder")
    return found


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "image"


def collect(args: argparse.Namespace) -> list[Item]:
    """The images to explain, in order, each with a unique file-safe stem."""
    items: list[Item] = []
    for path, root in image_files(args.images):
        relative = path.relative_to(root).with_suffix("")
        items.append(Item(_safe("__".join(relative.parts)), str(path), partial(load_image, path)))
    if args.data is not None:
        from protoviz.data.datasets import open_dataset

        dataset = open_dataset(args.data, split=args.split, crop_to_box=args.crop)
        count = len(dataset) if args.limit is None else max(1, min(args.limit, len(dataset)))
        picks = np.unique(np.linspace(0, len(dataset) - 1, count).round().astype(int)).tolist() if len(dataset) else []
        for i in picks:
            record = dataset.records[i]
            items.append(Item(_safe(f"{args.split}_{record.image_id}"), f"{args.data}:{record.image_id}",
                              partial(_dataset_image, dataset, i)))
    if not items:
        raise ConfigError("no images: give image files or folders, or --data DIR")
    seen: dict[str, int] = {}
    unique = []
    for item in items:  # two photo.png in different folders must not overwrite each other
        count = seen.get(item.stem, 0)
        seen[item.stem] = count + 1
        unique.append(item if count == 0 else Item(f"{item.stem}_{count + 1}", item.origin, item.load))
    return unique


def _dataset_image(dataset: Any, index: int) -> Image.Image:
    return dataset[index].image


def target_class(model: PrototypeModel, target: str | None) -> int | None:
    """A class name or index -> its index (None = the predicted class)."""
    if target is None:
        return None
    if target in model.class_names:
        return model.class_names.index(target)
    if target.isdigit() and int(target) < model.num_classes:
        return int(target)
    raise ConfigError(f"--class {target!r} is neither a class name nor an index below {model.num_classes}")


def decoded(items: Sequence[Item], skipped: list[dict[str, str]]) -> Iterator[tuple[Item, Image.Image]]:
    """Each item with its image; the ones that do not decode go to ``skipped`` with the reason."""
    for item in items:
        try:
            yield item, item.load()
        except (ImageError, DatasetError) as error:
            print(f"skipped {item.origin}: {error}", file=sys.stderr)
            skipped.append({"image": item.origin, "reason": str(error)})


def prediction_row(item: Item, explanation: ImageExplanation) -> dict[str, Any]:
    """One row of predictions.csv."""
    decision = explanation.decision
    return {
        "image": item.stem, "source": item.origin, "predicted_class": explanation.predicted_name,
        "probability": float(explanation.probabilities[explanation.predicted]),
        "explained_class": explanation.explained_name, "score": explanation.class_logit,
        "score_name": decision.score_name if decision else "logit",
        "shown_for": decision.shown("for") if decision else None,
        "shown_against": decision.shown("against") if decision else None,
        "other": decision.shown("other") if decision else None,
        "offset": decision.shown("offset") if decision else None,
        "sums_to_score": explanation.sums_to_logit if decision is None or decision.unit == "prototype" else None,
        "warnings": " ".join(explanation.warnings),
    }


def run(args: argparse.Namespace) -> int:
    if args.top_k < 1 or args.batch_size < 1:
        raise ConfigError("--top-k and --batch-size must be at least 1")
    device = pick_device(args.device)
    model = load_checkpoint(args.checkpoint, args, device)
    model.eval()
    items = collect(args)
    target = target_class(model, args.target)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = model.summary()
    label = f"{Path(args.checkpoint).stem} ({summary.family_label or summary.family})"
    sets = {j: name for j in range(model.num_prototypes)
            if (name := prototype_set(summary.prototype_groups, j)) is not None}
    tracker = console_progress(unit="images")
    predictions: list[dict[str, Any]] = []
    contributions: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    done = 0
    tracker(0, len(items), "cards")
    for start in range(0, len(items), args.batch_size):
        batch = list(decoded(items[start:start + args.batch_size], skipped))
        if batch:
            explained = explain_image(model, [image for _, image in batch], top_k=args.top_k,
                                      names=[item.stem for item, _ in batch], target=target)
            for (item, _), explanation in zip(batch, explained, strict=True):
                figure = paper_figure(explanation, label, model.input_spec.image_size, sets)
                for fmt in args.formats:
                    (args.out / f"{item.stem}.{fmt}").write_bytes(figure_file(figure, fmt, args.dpi))
                predictions.append(prediction_row(item, explanation))
                contributions += [{"source": item.origin, **row} for row in explanation.contribution_rows()]
                records.append({"source": item.origin, **explanation.as_record()})
        done = min(len(items), start + args.batch_size)
        tracker(done, len(items), "cards")
    provenance = _provenance(args, model, device, len(items))
    if predictions:
        write_csv(args.out / "predictions.csv", predictions, provenance)
        write_csv(args.out / "contributions.csv", contributions, provenance)
    document = {"explanations": records, "skipped": skipped, **provenance}
    (args.out / "explanations.json").write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {len(predictions)} explanation(s) to {args.out} ({', '.join(args.formats)} figures, "
          f"predictions.csv, contributions.csv, explanations.json); {len(skipped)} skipped")
    if not predictions:
        raise ProtovizError(f"none of the {len(items)} image(s) could be explained")
    return 0


def _provenance(args: argparse.Namespace, model: PrototypeModel, device: torch.device, count: int) -> dict[str, Any]:
    summary = model.summary()
    return {
        "made_by": "protoviz cards",
        "model": {"path": str(args.checkpoint), "family": summary.family, "family_label": summary.family_label,
                  "checkpoint_sha256": model.metadata.get("checkpoint_sha256"), "classes": list(model.class_names)},
        "settings": {"top_k": args.top_k, "class": args.target, "formats": list(args.formats), "dpi": args.dpi,
                     "batch_size": args.batch_size, "percentile": 95.0, "upsampling": "bicubic (OpenCV INTER_CUBIC)"},
        "inputs": {"images": [str(p) for p in args.images], "data": str(args.data) if args.data else None,
                   "split": args.split if args.data else None, "limit": args.limit, "crop_to_box": args.crop,
                   "count": count},
        "device": describe_device(device),
        "versions": {"protoviz": getattr(protoviz, "__version__", "unknown"), "torch": torch.__version__,
                     "python": platform.python_version()},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }

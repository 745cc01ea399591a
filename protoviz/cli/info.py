"""`protoviz info CKPT`: what a checkpoint is: family, sizes, similarity, classes, prototype sources, accuracy
and the training record; ``--json`` gives the same with real numbers (ints, floats, lists), not display text."""

from __future__ import annotations

import argparse
import json
from typing import Any

from protoviz.cli.load_options import add_load_options, load_hints
from protoviz.models import load_model
from protoviz.models.base import PrototypeModel

ACCURACY_KEYS = ("test_accuracy", "test_accuracy_cropped_to_box", "train_accuracy", "fresh_accuracy", "test_images",
                 "train_images")
HIDDEN = ("checkpoint_sha256", "load_hints")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="describe a checkpoint: family, classes, sources, training, accuracy")
    parser.add_argument("checkpoint", help="a .safetensors file, a research checkpoint, or a ProtoTree folder")
    parser.add_argument("--family", default=None, help="family hint for ambiguous files (e.g. protopnet or tesnet)")
    parser.add_argument("--json", action="store_true", help="print JSON (numbers as numbers) instead of a table")
    parser.add_argument("--sources", action="store_true", help="with --json: list every prototype's source")
    add_load_options(parser)
    parser.set_defaults(func=run)


def model_record(model: PrototypeModel, sources: bool = False) -> dict[str, Any]:
    """Everything `info` knows about a model, JSON-able with real numbers."""
    summary = model.summary()
    known = [(j, s) for j, s in enumerate(model.prototype_sources) if s is not None]
    metadata = dict(model.metadata)
    record: dict[str, Any] = {
        "family": summary.family, "family_label": summary.family_label, "backbone": summary.backbone,
        "input_size": list(summary.input_size), "num_prototypes": summary.num_prototypes,
        "num_classes": summary.num_classes, "map_size": list(summary.map_size), "similarity": summary.similarity,
        "similarity_unit": summary.similarity_unit, "output_kind": summary.output_kind,
        "prototype_sets": {name: list(span) for name, span in summary.prototype_groups.items()},
        "num_parameters": summary.num_parameters, "settings": dict(summary.settings),
        "load_hints": dict(metadata.get("load_hints", {})), "classes": list(model.class_names),
        "sources": {"known": len(known), "total": model.num_prototypes},
        "accuracy": {key: metadata[key] for key in ACCURACY_KEYS if key in metadata},
        "training": {k: v for k, v in metadata.items() if k not in ACCURACY_KEYS and k not in HIDDEN},
        "checkpoint_sha256": metadata.get("checkpoint_sha256"),
    }
    if sources:
        record["sources"]["prototypes"] = [{"prototype": j, **s.to_dict()} for j, s in known]
    return record


def _accuracy_line(accuracy: dict[str, Any]) -> str:
    if not accuracy:
        return "not recorded in the checkpoint"
    parts = []
    for key, label in (("test_accuracy", "test"), ("test_accuracy_cropped_to_box", "test cropped to boxes"),
                       ("train_accuracy", "train"), ("fresh_accuracy", "fresh images")):
        if key in accuracy:
            parts.append(f"{label} {float(accuracy[key]):.1%}")
    images = [f"{accuracy[k]} {k.split('_')[0]} images" for k in ("test_images", "train_images") if k in accuracy]
    return ", ".join(parts) + (f" ({', '.join(images)})" if images else "")


def _training_lines(training: dict[str, Any]) -> list[tuple[str, str]]:
    if not training:
        return [("training", "not recorded in the checkpoint")]
    rows = []
    if "made" in training:
        rows.append(("made", str(training["made"])))
    if "train_seconds" in training:
        rows.append(("training time", f"{float(training['train_seconds']):.0f} s on {training.get('train_device', '?')}"))
    config = training.get("train_config")
    if isinstance(config, dict):
        epochs = {k.removesuffix("_epochs"): v for k, v in config.items() if k.endswith("_epochs")}
        if epochs:
            rows.append(("epochs", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in epochs.items())))
    for key in ("seed", "dataset", "command", "protoviz_version", "torch_version"):
        if key in training:
            value = training[key]
            rows.append((key.replace("_", " "), json.dumps(value) if isinstance(value, (dict, list)) else str(value)))
    history = training.get("history")
    if isinstance(history, list) and history:
        rows.append(("history", f"{len(history)} lines; last: {history[-1]}"))
    shown = {"made", "train_seconds", "train_device", "train_config", "seed", "dataset", "command", "protoviz_version",
             "torch_version", "history"}
    rows += [(k.replace("_", " "), json.dumps(v, default=str)) for k, v in training.items() if k not in shown]
    return rows


def table_rows(model: PrototypeModel, record: dict[str, Any]) -> list[tuple[str, str]]:
    """The human-readable table: the summary rows, then classes, sources, accuracy and the training record."""
    rows = list(model.summary().as_rows())
    rows += [(f"{name} chosen", str(why)) for name, why in record["load_hints"].items()]
    classes = record["classes"]
    rows.append((f"classes ({len(classes)})", ", ".join(classes)))
    sources = record["sources"]
    rows.append(("prototype sources", f"{sources['known']} of {sources['total']} known"
                 + ("" if sources["known"] else " (not pushed or not imported: cards show no 'that' patch)")))
    rows.append(("accuracy", _accuracy_line(record["accuracy"])))
    rows += _training_lines(record["training"])
    rows.append(("sha256", str(record["checkpoint_sha256"] or "-")))
    return rows


def run(args: argparse.Namespace) -> int:
    model = load_model(args.checkpoint, family=args.family, **load_hints(args))
    record = model_record(model, sources=args.sources)
    if args.json:
        print(json.dumps(record, indent=2, default=str))
        return 0
    rows = table_rows(model, record)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0

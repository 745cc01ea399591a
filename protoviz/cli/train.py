"""`protoviz train --data DIR --out FILE.safetensors`: train a native ProtoPNet through ProtoPNet's stages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import protoviz
from protoviz.errors import ConfigError
from protoviz.models.base import InputSpec
from protoviz.models.checkpoint import save_model
from protoviz.models.protopnet import ProtoPNet, ProtoPNetConfig
from protoviz.train.config import PRESETS, preset
from protoviz.train.data import load_split
from protoviz.train.trainer import ProgressPrinter, accuracy, train_protopnet


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a native ProtoPNet on a CUB-layout or ImageFolder dataset")
    parser.add_argument("--data", required=True, type=Path, help="dataset folder (CUB layout with a train/test split)")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint to write (.safetensors)")
    parser.add_argument("--config", default="default", choices=sorted(PRESETS), help="training preset")
    parser.add_argument("--epochs", type=int, nargs=3, metavar=("WARM", "JOINT", "LAST"), default=None,
                        help="epochs of the warm-up, joint and last-layer stages (override the preset)")
    parser.add_argument("--pretrain-epochs", type=int, default=None, help="backbone pre-training epochs (override)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1, mps ...")
    parser.add_argument("--backbone", default="tiny_cnn", help="feature extractor (see protoviz.models.backbones)")
    parser.add_argument("--similarity", default="log", choices=("log", "cosine"))
    parser.add_argument("--sets", default="prototypes", help="prototype sets, comma separated (e.g. support,trivial)")
    parser.add_argument("--prototypes-per-class", type=int, default=5)
    parser.add_argument("--prototype-dim", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=128, help="model input side in pixels")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.out.suffix != ".safetensors":
        raise ConfigError(f"--out must end in .safetensors, got {args.out}")
    changes = {k: v for k, v in {"batch_size": args.batch_size, "seed": args.seed, "device": args.device,
                                 "pretrain_epochs": args.pretrain_epochs}.items() if v is not None}
    if args.epochs is not None:
        changes.update(warm_epochs=args.epochs[0], joint_epochs=args.epochs[1], last_layer_epochs=args.epochs[2])
    config = preset(args.config).replace(**changes)
    spec = InputSpec(image_size=(args.image_size, args.image_size))
    train = load_split(args.data, "train", spec)
    model_config = ProtoPNetConfig(
        class_names=train.class_names, backbone=args.backbone, similarity=args.similarity,
        prototype_sets=tuple(s.strip() for s in args.sets.split(",") if s.strip()),
        prototypes_per_class=args.prototypes_per_class, prototype_dim=args.prototype_dim, input=spec)
    torch.manual_seed(config.seed)
    model = ProtoPNet(model_config)
    printer = ProgressPrinter(sys.stderr)
    result = train_protopnet(model, train, config, progress=None if args.quiet else printer,
                             log=None if args.quiet else printer.log)
    test = load_split(args.data, "test", spec)
    arguments = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in ("func",)}
    extra: dict[str, object] = {
        "train_accuracy": round(accuracy(model, train), 4), "test_accuracy": round(accuracy(model, test), 4),
        "seed": config.seed, "train_config": config.to_dict(), "train_seconds": round(result.seconds, 1),
        "train_device": result.device, "dataset": str(args.data), "protoviz_version": protoviz.__version__,
        "command": "protoviz train", "arguments": arguments, "history": result.summary()["history"]}
    save_model(model, args.out, extra=extra)
    print(f"wrote {args.out}: train accuracy {extra['train_accuracy']}, test accuracy {extra['test_accuracy']}, "
          f"{result.seconds:.0f} s on {result.device}")
    return 0


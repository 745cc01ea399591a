"""`protoviz synth OUT`: write the synthetic part-annotated dataset (CUB layout, masks, class rules)."""

from __future__ import annotations

import argparse
from pathlib import Path

from protoviz.data.synthetic import SyntheticConfig, generate_dataset


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("synth", help="generate the synthetic part-annotated bird dataset")
    parser.add_argument("out_dir", type=Path, help="folder to write (CUB-200-2011 layout)")
    parser.add_argument("--seed", type=int, default=SyntheticConfig.seed)
    parser.add_argument("--size", type=int, default=SyntheticConfig.image_size, help="image side in pixels")
    parser.add_argument("--train", type=int, default=SyntheticConfig.n_train_per_class, help="training images per class")
    parser.add_argument("--test", type=int, default=SyntheticConfig.n_test_per_class, help="test images per class")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset already in OUT_DIR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = SyntheticConfig(image_size=args.size, n_train_per_class=args.train,
                             n_test_per_class=args.test, seed=args.seed)
    root = generate_dataset(args.out_dir, config, progress=True, overwrite=args.overwrite)
    print(f"wrote {root}")
    return 0

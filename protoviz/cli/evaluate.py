"""`protoviz evaluate CKPT --data DIR`: dataset-wide scores (consistency, stability, accuracy, ...)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from protoviz.data.datasets import KINDS, open_dataset
from protoviz.device import pick_device
from protoviz.metrics.config import PARAMETER_HELP, PartMetricConfig
from protoviz.metrics.export import to_csv, to_json
from protoviz.metrics.runner import METRICS, EvaluationConfig, evaluate
from protoviz.models import load_model

SYNTHETIC = "synthetic"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="consistency, stability, accuracy ... of a model over a dataset",
        description="Dataset-wide scores of a prototype model. Defaults reproduce Huang et al.'s reference.",
        epilog="metrics: " + "; ".join(f"{k}: {v}" for k, v in METRICS.items()))
    parser.add_argument("checkpoint", help="a .safetensors file or a research checkpoint")
    parser.add_argument("--data", required=True,
                        help=f"dataset folder (CUB layout, Stanford Cars/Dogs, ImageFolder) or '{SYNTHETIC}' for the "
                             "bundled synthetic set (generated once into the cache folder)")
    parser.add_argument("--kind", default="auto", choices=KINDS, help="dataset layout (default: detect)")
    parser.add_argument("--split", default="test", choices=("test", "train", "all"))
    parser.add_argument("--no-crop", dest="crop", action="store_false",
                        help="use the whole image, with part coordinates scaled to the resized image, instead of "
                             "cropping each image to its bounding box first as the reference does (the default)")
    parser.add_argument("--metrics", default=None,
                        help="comma-separated (default: accuracy,consistency,stability with parts, "
                             "accuracy,region_stability without)")
    parser.add_argument("--json", type=Path, default=None, help="write scores, per-prototype results and provenance")
    parser.add_argument("--csv", type=Path, default=None, help="write one row per prototype")
    parser.add_argument("--limit", type=int, default=None, help="evaluate N images evenly spaced over the dataset")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
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
    parser.set_defaults(func=run)


class ProgressPrinter:
    """Prints `stage: done/total (rate img/s)` to stderr, in place on a terminal, else every 10%."""

    def __init__(self, quiet: bool = False):
        self.quiet, self.start, self.last = quiet, time.perf_counter(), (None, -1)
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int, stage: str) -> None:
        if self.quiet:
            return
        decile = 10 * done // max(total, 1)
        if not self.tty and (stage, decile) == self.last and done != total:
            return
        self.last = (stage, decile)
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        line = f"{stage}: {done}/{total} ({rate:.1f}/s)"
        print(("\r" + line) if self.tty else line, end="\n" if (done == total or not self.tty) else "",
              file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    model = load_model(args.checkpoint, family=args.family, device=device)
    if args.data == SYNTHETIC:
        from protoviz.data.demo import synthetic_dataset

        folder = synthetic_dataset()
    else:
        folder = Path(args.data).expanduser()
    dataset = open_dataset(folder, kind=args.kind, split=args.split, crop_to_box=args.crop)
    if args.metrics:
        metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    else:
        metrics = ("accuracy", "consistency", "stability") if dataset.has_parts else ("accuracy", "region_stability")
    parts = PartMetricConfig(half_size=args.half_size, mu=args.mu, noise_std=args.noise_std,
                             noise_clip=args.noise_clip if args.noise_clip and args.noise_clip > 0 else None,
                             seed=args.seed, noise_draws=args.draws, merge_left_right=args.merge_left_right)
    config = EvaluationConfig(metrics=metrics, parts=parts, batch_size=args.batch_size, limit=args.limit)
    if not dataset.has_parts and not args.quiet:
        print(f"note: part metrics unavailable: {dataset.parts_reason}", file=sys.stderr)
    result = evaluate(model, dataset, config, progress=ProgressPrinter(args.quiet))
    name = Path(args.checkpoint).name
    width = max(len(k) for k in result.scores)
    print(f"{name} on {dataset.root} ({dataset.kind}, {dataset.split}, {result.provenance['images_evaluated']} images,"
          f" {result.provenance['device']})")
    for key, value in result.scores.items():
        print(f"  {key:<{width}}  {value:.4f}")
    if args.json:
        args.json.write_text(to_json({name: result}), encoding="utf-8")
    if args.csv:
        args.csv.write_text(to_csv({name: result}), encoding="utf-8")
    return 0

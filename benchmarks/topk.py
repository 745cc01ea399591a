"""Images per second of the one-pass top-k search (and the full compare pass), next to the bare forward.

On the same preloaded images (N, 3, H, W) and batch size, median of ``--repeats`` rounds in which the
variants take turns:
- forward: ``model(x)`` per batch under no_grad, the floor;
- top-k only: the running (P, k) merge with torch.topk alone (no latents, no crops);
- top-k pass: :class:`TopKAccumulator` as the app runs it (the merge, latents at the winning cells,
  roi_align crops of the new winners) fed by the shared pass;
- compare pass: top-k + activation profiles + accuracy counts in the same pass (what the Compare
  page and `protoviz compare` run per model).
The images are random tensors (decoding is not measured: it is the same for every variant).
Usage::

    python benchmarks/topk.py [--model PATH] [--backbone resnet18] [--prototypes-per-class 10]
        [--classes 20] [--size 224] [--images 256] [--batch-size 64] [--k 5] [--per-image best|all]
        [--device auto|cpu|cuda] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protoviz.compare.matching import ProfileAccumulator
from protoviz.compare.scan import tensor_batches
from protoviz.compare.topk import TopKAccumulator, TopKConfig
from protoviz.device import describe_device, pick_device
from protoviz.metrics.accuracy import AccuracyAccumulator
from protoviz.models import load_model
from protoviz.models.base import InputSpec, PrototypeModel
from protoviz.models.protopnet import ProtoPNet, ProtoPNetConfig
from protoviz.passes import run_pass


def build_model(args: argparse.Namespace, device: torch.device) -> PrototypeModel:
    if args.model:
        return load_model(args.model, device=device)
    torch.manual_seed(0)
    config = ProtoPNetConfig(class_names=tuple(f"c{i}" for i in range(args.classes)), backbone=args.backbone,
                             prototypes_per_class=args.prototypes_per_class, prototype_dim=128,
                             input=InputSpec(image_size=(args.size, args.size)))
    return ProtoPNet(config).to(device).eval()


def timed(variants: dict[str, Callable[[], None]], device: torch.device,
          repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall seconds, process CPU seconds) of each variant after one warm-up each. The variants
    take turns, one run each per round, so a machine whose load drifts (shared CPUs) slows them alike;
    the CPU time is the fairer reading on a shared machine."""
    for fn in variants.values():
        fn()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, cpu = time.perf_counter(), time.process_time()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append((time.perf_counter() - start, time.process_time() - cpu))
    return {name: (statistics.median(v[0] for v in values), statistics.median(v[1] for v in values))
            for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a checkpoint; default: a random ProtoPNet (see below)")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--prototypes-per-class", type=int, default=10)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--per-image", default="best", choices=("best", "all"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    model = build_model(args, device)
    height, width = model.input_spec.image_size
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.images, 3, height, width, generator=generator).to(device)
    labels = torch.randint(0, model.num_classes, (args.images,), generator=generator).to(device)
    config = TopKConfig(k=args.k, per_image=args.per_image)

    def forward() -> None:
        with torch.no_grad():
            for batch in tensor_batches(images, args.batch_size):
                model(batch.images)

    def topk() -> None:
        run_pass(model, tensor_batches(images, args.batch_size), [TopKAccumulator(config)])

    def bare_topk() -> None:
        bare = TopKConfig(k=args.k, per_image=args.per_image, thumbnail_size=0, keep_latents=False)
        run_pass(model, tensor_batches(images, args.batch_size), [TopKAccumulator(bare)])

    def full() -> None:
        run_pass(model, tensor_batches(images, args.batch_size, labels),
                 [TopKAccumulator(config), ProfileAccumulator(), AccuracyAccumulator(model.num_classes, device)])

    print(f"device {describe_device(device)} | {model.family} {model.backbone_name} {height}x{width} | "
          f"P={model.num_prototypes} map {model.map_size()} | N={args.images} batch {args.batch_size} "
          f"k={args.k} per_image={args.per_image} | torch {torch.__version__}")
    variants = {"forward": forward, "top-k only": bare_topk, "top-k pass": topk, "compare pass": full}
    seconds = timed(variants, device, args.repeats)
    base_wall, base_cpu = (args.images / s for s in seconds["forward"])
    for name, (wall, cpu) in seconds.items():
        rate, cpu_rate = args.images / wall, args.images / cpu
        print(f"{name:<13} {rate:10.1f} images/s   ({wall:.3f} s, {rate / base_wall:.2f}x forward) | "
              f"CPU time {cpu:.3f} s, {cpu_rate / base_cpu:.2f}x forward")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

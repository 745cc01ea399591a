"""Milliseconds per (image, prototype) of each heatmap method, next to the bare forward pass.

Usage: python benchmarks/heatmaps.py [--model PATH] [--images 4] [--prototypes 4] [--repeats 3]
       [--device cpu|cuda|auto] [--smoothgrad-samples 16]

Without --model it takes the first demo model in assets/models/*.safetensors, else a random ProtoPNet
on the tiny_cnn backbone at 224x224 (the demo models' architecture size). Prints one table per device:
the forward pass per image, and each method per (image, prototype) with its ratio to the forward pass
per image, as medians of --repeats interleaved runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protoviz.device import describe_device, pick_device
from protoviz.heatmaps.methods import HeatmapOptions, compute_heatmaps, list_methods
from protoviz.models import InputSpec, PrototypeModel, load_model
from protoviz.models.protopnet import ProtoPNet, ProtoPNetConfig


def demo_or_tiny(path: str | None) -> tuple[PrototypeModel, str]:
    """The model to time and a label saying which one it is."""
    candidates = [Path(path)] if path else sorted((ROOT / "assets" / "models").glob("*.safetensors"))
    if candidates:
        return load_model(candidates[0]), candidates[0].name
    torch.manual_seed(0)
    config = ProtoPNetConfig(class_names=tuple(f"c{i}" for i in range(10)), backbone="tiny_cnn",
                             prototypes_per_class=5, prototype_dim=64, input=InputSpec(image_size=(224, 224)))
    return ProtoPNet(config).eval(), "random ProtoPNet(tiny_cnn, 224x224, P=50)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_once(fn, device: torch.device) -> float:
    """Seconds of one call."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def bench(model: PrototypeModel, device: torch.device, args: argparse.Namespace) -> list[tuple[str, float, str, float]]:
    """Rows (name, milliseconds, unit, ratio to the forward pass per image) for one device.

    Every repeat times the forward pass and then each method, so that load from other processes hits
    all of them alike; each number is the median over the repeats, after one warm-up call each.
    """
    model = model.to(device)
    h, w = model.input_spec.image_size
    torch.manual_seed(0)
    images = torch.randn(args.images, 3, h, w, device=device)
    prototypes = torch.arange(args.prototypes, device=device) % model.num_prototypes
    options = HeatmapOptions(smoothgrad_samples=args.smoothgrad_samples, batch_rows=args.batch_rows)
    pairs = args.images * args.prototypes

    def forward() -> None:
        with torch.no_grad():
            model(images)

    calls = {"forward pass": forward}
    for method in list_methods():
        calls[method] = lambda m=method: compute_heatmaps(m, model, images, prototypes, options)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for name, fn in calls.items():
        timed_once(fn, device)  # warm-up
    for _ in range(args.repeats):
        for name, fn in calls.items():
            times[name].append(timed_once(fn, device))
    forward_ms = 1000 * statistics.median(times["forward pass"]) / args.images
    rows = [("forward pass", forward_ms, "ms / image", 1.0)]
    for method in list_methods():
        ms = 1000 * statistics.median(times[method]) / pairs
        rows.append((method, ms, "ms / (image, prototype)", ms / forward_ms))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--prototypes", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoothgrad-samples", type=int, default=16)
    parser.add_argument("--batch-rows", type=int, default=32)
    parser.add_argument("--device", default="all", help="cpu, cuda, or all (cpu and, when present, cuda)")
    args = parser.parse_args(argv)
    model, label = demo_or_tiny(args.model)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else []) \
        if args.device == "all" else [pick_device(args.device)]
    print(f"model: {label} ({model.family}, {model.input_spec.image_size[0]}x{model.input_spec.image_size[1]}, "
          f"P={model.num_prototypes}); {args.images} images x {args.prototypes} prototypes, "
          f"smoothgrad {args.smoothgrad_samples} samples, median of {args.repeats}; torch {torch.__version__}")
    for device in devices:
        print(f"\n{describe_device(device)}")
        print(f"{'':<14}{'ms':>10}  {'x forward':>9}  unit")
        for name, ms, unit, ratio in bench(model, device, args):
            print(f"{name:<14}{ms:>10.2f}  {ratio:>9.2f}  {unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

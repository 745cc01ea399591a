"""Throughput of the global characteristic explanation next to the model's bare forward pass.

The limit: every image needs 7 forwards (original + 6 modifications), so the explanation cannot beat
(bare forward images/s) / 7 on the same data and device. The target for ``fast`` mode is >= 0.8 of that
limit. Images are decoded into memory first (decoding is not timed in either number); the bare forward
is timed on tensors already resized and normalised on the device, so the explanation's own resizing
counts against it. Every rate is measured twice at once: wall clock, and on the CPU the process's CPU
time (all threads), which other jobs on a shared machine distort less but which charges the worker
thread (resizing, OpenCV texture filter) that otherwise runs beside the forward pass in full. The load
average before and after is printed: on a busy machine the wall-clock ratio is noise.

    python benchmarks/characteristics.py [--checkpoint CKPT | --backbone resnet18 --size 224] [--images 256]
        [--batch-size 32] [--device auto] [--modes fast reference] [--threads 1] [--json out.json]

Without ``--checkpoint`` a demo model from assets/models is used if present, else a randomly initialised
ProtoPNet of the demo architecture (throughput does not depend on the weights). Without ``--data`` the
images are rendered in memory by the synthetic generator (128 px, the demo models' data).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from protoviz.data.transforms import preprocess
from protoviz.device import describe_device, pick_device
from protoviz.explain import ExplainConfig, explain_dataset
from protoviz.models import load_model
from protoviz.models.base import InputSpec, PrototypeModel
from protoviz.models.protopnet import ProtoPNet, ProtoPNetConfig


def build_model(args: argparse.Namespace, device: torch.device) -> tuple[PrototypeModel, str]:
    if args.checkpoint:
        return load_model(args.checkpoint, device=device), Path(args.checkpoint).stem
    demos = sorted((ROOT / "assets" / "models").glob("*.safetensors"))
    if demos and args.backbone is None:
        return load_model(demos[0], device=device), demos[0].stem
    backbone = args.backbone or "tiny_cnn"
    torch.manual_seed(0)
    size = args.size
    config = ProtoPNetConfig(class_names=tuple(f"c{i}" for i in range(8)), backbone=backbone, prototypes_per_class=5,
                             prototype_dim=64, input=InputSpec(image_size=(size, size)))
    return ProtoPNet(config).eval().to(device), f"random {backbone} ProtoPNet (40 prototypes, {size} px)"


def load_images(args: argparse.Namespace) -> list[Image.Image]:
    if args.data:
        from protoviz.data.datasets import open_dataset
        dataset = open_dataset(args.data, split="test")
        return [dataset[i].image.copy() for i in range(min(args.images, len(dataset)))]
    from protoviz.data.synthetic import SyntheticConfig, render_dataset
    per_class = max(1, -(-args.images // 8))
    samples = render_dataset(SyntheticConfig(n_train_per_class=0, n_test_per_class=per_class), split="test")
    return [Image.fromarray(np.asarray(s.image)) for s in samples[:args.images]]


class Clock:
    """Wall time and, on the CPU, this process's CPU time, read together."""

    def __init__(self, device: torch.device):
        self.device = device

    def now(self) -> tuple[float, float]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter(), time.process_time()


def best_times(run: object, device: torch.device, repeats: int) -> tuple[float, float]:
    """The best (wall, CPU) seconds of ``repeats`` calls of ``run()``."""
    clock = Clock(device)
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        wall0, cpu0 = clock.now()
        run()  # type: ignore[operator]
        wall1, cpu1 = clock.now()
        best_wall, best_cpu = min(best_wall, wall1 - wall0), min(best_cpu, cpu1 - cpu0)
    return best_wall, best_cpu


def forward_rate(model: PrototypeModel, images: list[Image.Image], batch_size: int,
                 repeats: int) -> tuple[float, float]:
    """Bare forward images/s (wall, CPU): the best of batch sizes B and 7B (the explanation's forward batch)."""
    rates = [_forward_rate(model, images, size, repeats) for size in (batch_size, 7 * batch_size)]
    return max(r[0] for r in rates), max(r[1] for r in rates)


@torch.no_grad()
def _forward_rate(model: PrototypeModel, images: list[Image.Image], batch_size: int,
                  repeats: int) -> tuple[float, float]:
    """Bare forward images/s on pre-resized, normalised tensors already on the device."""
    device = model.device
    batches = [preprocess(images[s:s + batch_size], model.input_spec).to(device)
               for s in range(0, len(images), batch_size)]
    model(batches[0])  # warm-up

    def run() -> None:
        for batch in batches:
            model(batch)
    wall, cpu = best_times(run, device, repeats)
    return len(images) / wall, len(images) / cpu


def explain_rate(model: PrototypeModel, images: list[Image.Image], batch_size: int, mode: str, repeats: int,
                 max_search: int) -> tuple[float, float]:
    config = ExplainConfig(mode=mode, fast_max_search=max_search)
    explain_dataset(model, images[:batch_size], config, batch_size=batch_size)  # warm-up
    wall, cpu = best_times(lambda: explain_dataset(model, images, config, batch_size=batch_size), model.device,
                           repeats)
    return len(images) / wall, len(images) / cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--backbone", default=None, help="random ProtoPNet with this backbone (e.g. resnet18)")
    parser.add_argument("--size", type=int, default=128, help="input size of the random model (e.g. 224)")
    parser.add_argument("--data", default=None, help="dataset folder; default: synthetic images in memory")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--modes", nargs="+", default=["fast", "reference"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-search", type=int, default=ExplainConfig().fast_max_search,
                        help="fast mode's texture search window cap")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 gives steadier CPU times)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    model, name = build_model(args, device)
    images = load_images(args)
    load_before = os.getloadavg()[0]
    bare_wall, bare_cpu = forward_rate(model, images, args.batch_size, args.repeats)
    record: dict = {"model": name, "device": describe_device(device), "images": len(images),
                    "batch_size": args.batch_size, "input_size": list(model.input_spec.image_size),
                    "forward_images_per_s": {"wall": bare_wall, "cpu": bare_cpu},
                    "limit_images_per_s": {"wall": bare_wall / 7, "cpu": bare_cpu / 7},
                    "torch": torch.__version__, "fast_max_search": args.max_search,
                    "threads": torch.get_num_threads(), "cores": os.cpu_count(), "modes": {}}
    print(f"model: {name} on {record['device']}, {len(images)} images, batch {args.batch_size}, "
          f"{record['threads']} torch thread(s), {os.cpu_count()} cores")
    print(f"bare forward: {bare_wall:9.1f} images/s wall, {bare_cpu:9.1f} per CPU-second;   limit (/7): "
          f"{bare_wall / 7:8.1f} wall, {bare_cpu / 7:8.1f} CPU")
    for mode in args.modes:
        wall, cpu = explain_rate(model, images, args.batch_size, mode, args.repeats, args.max_search)
        ratio_wall, ratio_cpu = wall / (bare_wall / 7), cpu / (bare_cpu / 7)
        record["modes"][mode] = {"images_per_s": {"wall": wall, "cpu": cpu},
                                 "ratio_to_limit": {"wall": ratio_wall, "cpu": ratio_cpu}}
        target = "  (target >= 0.8)" if mode == "fast" else ""
        print(f"explain {mode:9s}: {wall:9.1f} images/s wall, {cpu:9.1f} per CPU-second;   ratio to limit: "
              f"{ratio_wall:5.2f} wall, {ratio_cpu:5.2f} CPU{target}")
    record["load_average"] = {"before": load_before, "after": os.getloadavg()[0]}
    print(f"load average (1 min) before {load_before:.1f}, after {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

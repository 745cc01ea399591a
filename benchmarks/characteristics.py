"""Throughput of the global characteristic explanation next to the model's bare forward pass.

The limit: every image needs 7 forwards (original + 6 modifications), so the explanation cannot beat
(bare forward images/s) / 7 on the same data and device. The target for ``fast`` mode is >= 0.8 of that
limit. Images are decoded into memory first (decoding is not timed in either number); the bare forward
is timed on tensors already resized and normalised on the device, so the explanation's own resizing
counts against it. Rates are wall-clock; ``--cpu-time`` measures per CPU-second of this process instead
(see :func:`clock`), which other jobs on a shared machine distort less but which charges the worker
thread (decoding, resizing, OpenCV texture filter) that otherwise runs beside the forward pass.

    python benchmarks/characteristics.py [--checkpoint CKPT | --backbone tiny_cnn] [--images 256]
        [--batch-size 32] [--device auto] [--modes fast reference] [--json out.json]

Without ``--checkpoint`` a demo model from assets/models is used if present, else a randomly initialised
ProtoPNet of the demo architecture (throughput does not depend on the weights). Without ``--data`` the
images are rendered in memory by the synthetic generator (128 px, the demo models' data).
"""

from __future__ import annotations

import argparse
import json
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
    config = ProtoPNetConfig(class_names=tuple(f"c{i}" for i in range(8)), backbone=backbone, prototypes_per_class=5,
                             prototype_dim=64, input=InputSpec(image_size=(128, 128)))
    return ProtoPNet(config).eval().to(device), f"random {backbone} ProtoPNet (40 prototypes, 128 px)"


def load_images(args: argparse.Namespace) -> list[Image.Image]:
    if args.data:
        from protoviz.data.datasets import open_dataset
        dataset = open_dataset(args.data, split="test")
        return [dataset[i].image.copy() for i in range(min(args.images, len(dataset)))]
    from protoviz.data.synthetic import SyntheticConfig, render_dataset
    per_class = max(1, -(-args.images // 8))
    samples = render_dataset(SyntheticConfig(n_train_per_class=0, n_test_per_class=per_class), split="test")
    return [Image.fromarray(np.asarray(s.image)) for s in samples[:args.images]]


CPU_TIME = False  # set by --cpu-time


def clock(device: torch.device) -> float:
    """Wall time, or with --cpu-time on the CPU the process's CPU time (all threads): steadier on a
    machine shared with other jobs, but it charges the decoding / OpenCV worker thread in full even
    though it runs beside the forward pass."""
    return time.process_time() if CPU_TIME and device.type == "cpu" else time.perf_counter()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def forward_rate(model: PrototypeModel, images: list[Image.Image], batch_size: int, repeats: int) -> float:
    """Bare forward images/s: the best of batch sizes B and 7B (the explanation's forward batch)."""
    return max(_forward_rate(model, images, size, repeats) for size in (batch_size, 7 * batch_size))


@torch.no_grad()
def _forward_rate(model: PrototypeModel, images: list[Image.Image], batch_size: int, repeats: int) -> float:
    """Bare forward images/s on pre-resized, normalised tensors already on the device."""
    device = model.device
    batches = [preprocess(images[s:s + batch_size], model.input_spec).to(device)
               for s in range(0, len(images), batch_size)]
    model(batches[0])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = clock(device)
        for batch in batches:
            model(batch)
        sync(device)
        best = min(best, clock(device) - start)
    return len(images) / best


def explain_rate(model: PrototypeModel, images: list[Image.Image], batch_size: int, mode: str, repeats: int,
                 max_search: int) -> float:
    config = ExplainConfig(mode=mode, fast_max_search=max_search)
    explain_dataset(model, images[:batch_size], config, batch_size=batch_size)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        sync(model.device)
        start = clock(model.device)
        explain_dataset(model, images, config, batch_size=batch_size)
        sync(model.device)
        best = min(best, clock(model.device) - start)
    return len(images) / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--backbone", default=None, help="random ProtoPNet with this backbone (e.g. resnet18)")
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
    parser.add_argument("--cpu-time", action="store_true", help="on the CPU, rate per CPU-second instead of wall time")
    args = parser.parse_args(argv)
    global CPU_TIME
    CPU_TIME = args.cpu_time
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    model, name = build_model(args, device)
    images = load_images(args)
    bare = forward_rate(model, images, args.batch_size, args.repeats)
    limit = bare / 7
    record = {"model": name, "device": describe_device(device), "images": len(images), "batch_size": args.batch_size,
              "input_size": list(model.input_spec.image_size), "forward_images_per_s": bare,
              "limit_images_per_s": limit,
              "torch": torch.__version__, "fast_max_search": args.max_search, "cpu_time": args.cpu_time,
              "threads": torch.get_num_threads(), "modes": {}}
    print(f"model: {name} on {record['device']}, {len(images)} images, batch {args.batch_size}, "
          f"{'CPU' if args.cpu_time else 'wall'} time")
    print(f"bare forward: {bare:9.1f} images/s   limit (/7): {limit:9.1f} images/s")
    for mode in args.modes:
        rate = explain_rate(model, images, args.batch_size, mode, args.repeats, args.max_search)
        record["modes"][mode] = {"images_per_s": rate, "ratio_to_limit": rate / limit}
        target = "  (target >= 0.8)" if mode == "fast" else ""
        print(f"explain {mode:9s}: {rate:9.1f} images/s   ratio to limit: {rate / limit:5.2f}{target}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

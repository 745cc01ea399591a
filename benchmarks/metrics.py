"""Throughput of consistency + stability next to its limit, the bare forward pass / 2.

Usage: python benchmarks/metrics.py [--model PATH] [--images 128] [--batch-size 32] [--device auto]
       [--repeats 3] [--reference-maps 400]

Consistency + stability need two forward passes per image (clean and noisy); when everything else is
free the evaluation runs at half the forward-pass rate: that is the limit (target: >= 0.8 of it).
Both are timed on the same model, the same preloaded images (the bundled synthetic test set, decoded
once beforehand) and the same device. Also printed: the post-processing cost per map (upsample,
argmax, part tests, counting), the same per map for a loop written like the reference (cv2.resize +
np.argmax + Python loops, CPU), noise generation per image, and the end-to-end rate of
``protoviz.metrics.evaluate`` with decoding from disk.

Without --model it takes the first demo model in assets/models/*.safetensors, else a random ProtoPNet
(tiny_cnn, 224x224, 10 prototypes per synthetic class).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protoviz.data.datasets import Batch, load_batch, open_dataset
from protoviz.data.demo import synthetic_dataset
from protoviz.device import describe_device, pick_device
from protoviz.metrics.config import PartMetricConfig
from protoviz.metrics.consistency import PartAccumulator, class_mapping
from protoviz.metrics.noise import NoiseView, add_noise
from protoviz.metrics.parts import prototype_classes, select_pairs
from protoviz.metrics.runner import EvaluationConfig, evaluate, evaluation_indices
from protoviz.models import InputSpec, PrototypeModel, load_model
from protoviz.models.protopnet import ProtoPNet, ProtoPNetConfig
from protoviz.passes import run_pass


def demo_or_random(path: str | None, class_names: tuple[str, ...]) -> tuple[PrototypeModel, str]:
    candidates = [Path(path)] if path else sorted((ROOT / "assets" / "models").glob("*.safetensors"))
    if candidates:
        return load_model(candidates[0]), candidates[0].name
    torch.manual_seed(0)
    config = ProtoPNetConfig(class_names=class_names, backbone="tiny_cnn", prototypes_per_class=10,
                             prototype_dim=64, input=InputSpec(image_size=(224, 224)))
    return ProtoPNet(config).eval(), f"random ProtoPNet(tiny_cnn, 224x224, P={10 * len(class_names)})"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call after a warm-up call. CPU time is the fairer
    reading on a shared machine, where the wall clock also measures other people's load."""
    fn()
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def reference_loop_ms(maps: np.ndarray, parts: np.ndarray, size: int, half: int) -> float:
    """CPU ms per map of a reference-style loop: cv2.resize, np.argmax, explicit part loop."""
    start = time.process_time()
    for m, p in zip(maps, parts):
        up = cv2.resize(m, (size, size), interpolation=cv2.INTER_CUBIC)
        r, c = np.unravel_index(np.argmax(up), up.shape)
        r0, r1, c0, c1 = max(0, r - half), min(size, r + half), max(0, c - half), min(size, c + half)
        [int(vis > 0 and r0 <= v <= r1 and c0 <= u <= c1) for u, v, vis in p]
    return 1000 * (time.process_time() - start) / len(maps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-maps", type=int, default=400)
    args = parser.parse_args()
    device = pick_device(args.device)
    data = open_dataset(synthetic_dataset(), split="test")
    model, label = demo_or_random(args.model, data.class_names)
    model = model.to(device).eval()
    label_map = class_mapping(model.class_names, data.class_names)[0].to(device)
    indices = evaluation_indices(len(data), args.images)
    batches = [load_batch(data, model.input_spec, indices[s:s + args.batch_size])
               for s in range(0, len(indices), args.batch_size)]
    part_names = data.part_names or ()
    parts = [b.parts.to(device) for b in batches if b.parts is not None]  # the synthetic set has parts
    on_device = [Batch(b.images.to(device), b.unit, label_map[b.labels.to(device)], b.image_ids, p, b.indices)
                 for b, p in zip(batches, parts, strict=True)]
    n = len(indices)
    config = PartMetricConfig()

    with torch.inference_mode():
        # interleaved: each repeat times the forward passes and then the metric, so load changes on a
        # shared machine hit both; the ratio is the median of the per-repeat ratios
        forward_fn = lambda: [model(b.images) for b in on_device]
        relevance = prototype_classes(model).to(device)
        noise = NoiseView(config.noise_std, config.noise_clip, config.seed, config.noise_draws)

        def metric_fn() -> None:  # the pass engine with the part consumer, as evaluate() runs it
            consumer = PartAccumulator(relevance, part_names, config, model.input_spec.image_size, noise)
            run_pass(model, on_device, [consumer])
            consumer.result()

        pairs = [(measure(forward_fn, device), measure(metric_fn, device)) for _ in range(args.repeats)]
        forward_s = statistics.median(f[0] for f, _ in pairs)
        metric_s = statistics.median(m[0] for _, m in pairs)
        ratio = statistics.median((2 * f[0]) / m[0] for f, m in pairs)
        cpu_ratio = statistics.median((2 * f[1]) / m[1] for f, m in pairs)
        clean = [model.similarity_maps(b.images) for b in on_device]
        noisy = [model.similarity_maps(add_noise(b.images, b.indices, 0, 0, 0.2, 0.25)) for b in on_device]
        maps_total = 2 * sum(int(select_pairs(b.labels, relevance)[0].numel()) for b in on_device)

        def post() -> None:
            acc = PartAccumulator(relevance, part_names, config, model.input_spec.image_size, noise)
            for b, p, c, z in zip(on_device, parts, clean, noisy):
                acc.add(b.labels, p, c, [z])
            acc.result()

        clock = 1 if device.type == "cpu" else 0  # CPU time on a CPU, wall time (synchronised) on a GPU
        post_s = statistics.median(measure(post, device)[clock] for _ in range(args.repeats))
        noise_s = statistics.median(measure(lambda: [add_noise(b.images, b.indices, 0, 0, 0.2, 0.25)
                                                     for b in on_device], device)[clock] for _ in range(args.repeats))
        image_idx, proto_idx = select_pairs(on_device[0].labels, relevance)
        sample = clean[0][image_idx, proto_idx][: args.reference_maps].float().cpu().numpy()
        sample_parts = parts[0][image_idx][: args.reference_maps].cpu().numpy()
    size = model.input_spec.image_size[0]
    ref_ms = reference_loop_ms(sample, sample_parts, size, round(36 * size / 224))
    end_start = time.perf_counter()
    evaluate(model, data, EvaluationConfig(metrics=("consistency", "stability"), batch_size=args.batch_size,
                                           limit=args.images))
    end_s = time.perf_counter() - end_start

    forward_rate, metric_rate = n / forward_s, n / metric_s
    unit = "process CPU time" if device.type == "cpu" else "wall time"
    rows = [
        ("forward pass (bare)", f"{forward_rate:.1f} img/s"),
        ("limit = forward / 2", f"{forward_rate / 2:.1f} img/s"),
        ("consistency + stability", f"{metric_rate:.1f} img/s"),
        ("ratio to the limit (wall clock)", f"{ratio:.2f} (median of {args.repeats} interleaved repeats; target >= 0.8)"),
        ("ratio to the limit (process CPU time)", f"{cpu_ratio:.2f}"),
        ("post-processing per map", f"{1000 * post_s / maps_total:.4f} ms ({maps_total} maps; {unit})"),
        ("reference-style loop per map", f"{ref_ms:.4f} ms ({len(sample)} maps; CPU time, cv2 on the CPU)"),
        ("noise per image", f"{1000 * noise_s / n:.3f} ms ({unit})"),
        ("end-to-end evaluate() incl. decoding", f"{n / end_s:.1f} img/s"),
    ]
    print(f"model: {label} · device: {describe_device(device)} · {n} images · batch {args.batch_size} · "
          f"P={model.num_prototypes} · torch {torch.__version__}")
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


if __name__ == "__main__":
    main()

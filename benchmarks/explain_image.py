"""Milliseconds from a decoded PIL image to prototype cards, next to the bare forward pass.

For each model (default: assets/models/*.safetensors) and device (CPU, and CUDA when present):
- forward: ``model(x)`` on the already preprocessed input (B, 3, H, W), the floor;
- explain: ``explain_image(model, [pil])``: preprocessing, one forward, contributions, top-k,
  bicubic upsampling, 95th-percentile boxes, copies to numpy (what the Explain page computes);
- + pictures: explain plus the card pictures (JET overlays, boxes, source thumbnails).
Median (and minimum) of ``--runs`` runs after ``--warmup`` runs. Usage::

    python benchmarks/explain_image.py [MODEL.safetensors ...] [--runs 20] [--top-k 5] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protoviz.data.images import load_image
from protoviz.data.transforms import preprocess
from protoviz.device import describe_device
from protoviz.heatmaps import explain_image
from protoviz.models import load_model
from protoviz.models.base import PrototypeModel
from protoviz.viz.figures import evidence_panels


def timings_ms(fn: Callable[[], object], runs: int, warmup: int, device: torch.device) -> tuple[float, float]:
    """(median, min) wall time of ``fn`` in milliseconds (CUDA synchronised around each run).

    The minimum is shown too because on a shared, busy machine it is the least disturbed reading."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def test_image() -> Image.Image:
    """The first bundled sample, or a fixed random 320x240 image."""
    samples = sorted((ROOT / "assets" / "samples").glob("*.png")) + sorted((ROOT / "assets" / "samples").glob("*.jpg"))
    if samples:
        return load_image(samples[0])
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))


def with_pictures(model: PrototypeModel, image: Image.Image, top_k: int) -> None:
    explanation = explain_image(model, [image], top_k=top_k)[0]
    for evidence in explanation.prototypes:
        source = evidence.source
        evidence_panels(explanation.image, evidence.heatmap, evidence.box, model.input_spec.image_size,
                        source_image=source.image_thumbnail if source else None,
                        source_box=source.box if source else None,
                        patch=source.patch_thumbnail if source else None)


def bench(path: Path, device: torch.device, image: Image.Image, args: argparse.Namespace) -> dict[str, object]:
    model = load_model(path, device=device)
    x = preprocess([image], model.input_spec).to(device)

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    return {
        "model": path.stem, "device": describe_device(device), "P": model.num_prototypes,
        "input": "x".join(map(str, model.input_spec.image_size)), "map": "x".join(map(str, model.map_size())),
        "forward": timings_ms(forward, args.runs, args.warmup, device),
        "explain": timings_ms(lambda: explain_image(model, [image], top_k=args.top_k), args.runs, args.warmup, device),
        "pictures": timings_ms(lambda: with_pictures(model, image, args.top_k), args.runs, args.warmup, device),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path, help="checkpoints (default: assets/models/*.safetensors)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--device", action="append", help="device(s) to use (default: cpu, and cuda if present)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = args.models or sorted((ROOT / "assets" / "models").glob("*.safetensors"))
    if not models:
        print("no models: pass checkpoint paths or run `make demo-models`", file=sys.stderr)
        return 1
    devices = [torch.device(d) for d in args.device] if args.device else (
        [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else []))
    image = test_image()
    print(f"image {image.size[0]}x{image.size[1]}, top-k {args.top_k}, median of {args.runs} runs "
          f"after {args.warmup} warm-up, torch {torch.__version__}")
    print("times in ms: median (min)")
    header = f"{'model':<32} {'device':<18} {'P':>5} {'input':>8} {'map':>6} {'forward':>16} " \
             f"{'explain':>16} {'+pictures':>16} {'explain/fwd':>12}"
    print(header)
    print("-" * len(header))
    for path in models:
        for device in devices:
            row = bench(path, device, image, args)
            cells = " ".join(f"{f'{row[k][0]:.1f} ({row[k][1]:.1f})':>16}" for k in ("forward", "explain", "pictures"))
            print(f"{row['model']:<32} {row['device']:<18} {row['P']:>5} {row['input']:>8} {row['map']:>6} {cells} "
                  f"{row['explain'][0] / row['forward'][0]:>12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

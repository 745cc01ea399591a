"""CUB scale: a ResNet-34 ProtoPNet (200 classes, 2,000 prototypes, 224 px) over a CUB-sized dataset.

The model has random weights (``weights=None``: throughput and memory do not depend on them), or is read
from ``--checkpoint`` (e.g. a CUB model saved by the original ProtoPNet code, loaded as the dashboard
and the CLI load it; the ``load`` stage then times that read and its peak memory). The data
is a generated folder in the CUB-200-2011 layout of realistic size: by default 5,994 training and 5,794
test images (CUB's split) at CUB-like resolutions (most 500 px wide, 250-500 px high, some smaller),
JPEG, with boxes and 15 part locations per image, written once into ``--cache`` (reused while its
settings match), plus ``train_imagefolder/``, hard links of the training images as an ImageFolder (what
a projection reads, like ProtoPNet's ``train_cropped``).

Each stage streams over the images through the pass engine and is reported as images/s next to the
bare pass over the same images (decode, resize, normalise, one forward, no consumer), with its peak
memory:

- ``load`` (with ``--checkpoint``): :func:`protoviz.models.load_model` of the file, once;
- ``forward``: the bare pass; also ``model(x)`` alone on a few preloaded batches (no decoding);
- ``explain``: the Explain page's computation per image (:func:`explain_image`, top 10 for and
  against, the waterfall, upsampled heatmaps) in chunks of 16 images, decoding included;
- ``evaluate``: consistency + stability (Huang et al.; stability forwards a noisy copy of each image);
- ``topk``: the top-5 patches of every prototype (:func:`protoviz.compare.topk.topk_patches`);
- ``global``: global characteristics (7 forwards per image: the original and 6 modifications);
- ``projection``: each prototype's nearest own-class training patch, then its boxes and thumbnails.

Peak memory per stage: the resident set's high-water mark (``VmHWM``, reset before each stage through
``/proc/self/clear_refs`` where Linux allows it) and, on CUDA, ``torch.cuda.max_memory_allocated``.
Times: wall clock and the process's CPU time (all threads; less distorted by other jobs on a shared
machine). Each stage's rate is shown next to the bare pass's rate, by wall clock and by CPU time
(``x bare``: the share of the forward-pass limit the stage reaches; the CPU ratio is the fairer one when
other jobs share the machine). Runs unchanged on CUDA (``--device cuda``).

    python benchmarks/cub_scale.py [--quick] [--checkpoint PATH [--family F]] [--test-images 5794]
        [--train-images 5994] [--global-images 512] [--explain-images 128] [--batch-size 32] [--device auto]
        [--threads N] [--stages load,forward,explain,evaluate,topk,global,projection] [--cache DIR]
        [--json out.json]

``--quick``: 400 test and 400 training images, 64 for the global and explain stages, batch 16.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from protoviz.data.datasets import ImageDataset, iterate_batches, open_dataset
from protoviz.device import describe_device, pick_device
from protoviz.models.base import InputSpec, PrototypeModel
from protoviz.models.protopnet import ProtoPNet, ProtoPNetConfig
from protoviz.passes import run_pass

CLASSES, PER_CLASS, DIM, SIZE = 200, 10, 128, 224
CUB_TRAIN, CUB_TEST = 5994, 5794
PARTS = ("back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg", "left wing", "nape",
         "right eye", "right leg", "right wing", "tail", "throat")
STAGES = ("load", "forward", "explain", "evaluate", "topk", "global", "projection")
EXPLAIN_CHUNK = 16  # the Explain page's batch


# ----- the data --------------------------------------------------------------------------------
def cub_like_image(rng: np.random.Generator) -> Image.Image:
    """A picture of CUB's size and JPEG statistics: a smooth colour field, blobs and grain."""
    width = 500 if rng.random() < 0.85 else int(rng.integers(120, 500))
    height = int(width * rng.uniform(0.5, 1.0))
    coarse = rng.integers(0, 256, (int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3), dtype=np.uint8)
    picture = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.int16)
    grain = rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(picture + grain, 0, 255).astype(np.uint8))


def make_cub_folder(root: Path, train: int, test: int, seed: int = 0) -> Path:
    """Write ``root`` in the CUB-200-2011 layout (images spread evenly over 200 classes) and
    ``root/train_imagefolder`` (hard links of the training images). Reused when already complete."""
    marker = root / ".complete"
    settings = f"{train} {test} {seed}\n"
    if marker.is_file() and marker.read_text() == settings:
        return root
    rng = np.random.default_rng(seed)
    lines: dict[str, list[str]] = {n: [] for n in ("images", "labels", "split", "boxes", "locs")}
    image_id = 0
    started = time.perf_counter()
    total = train + test
    for is_train, count in ((1, train), (0, test)):
        for k in range(count):
            label = k % CLASSES
            folder = f"{label + 1:03d}.Class_{label + 1:03d}"
            image_id += 1
            name = f"{folder}/Class_{label + 1:03d}_{image_id:05d}.jpg"
            path = root / "images" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            picture = cub_like_image(rng)
            picture.save(path, format="JPEG", quality=90)
            w, h = picture.size
            bw, bh = w * rng.uniform(0.4, 0.9), h * rng.uniform(0.4, 0.9)
            bx, by = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            lines["images"].append(f"{image_id} {name}")
            lines["labels"].append(f"{image_id} {label + 1}")
            lines["split"].append(f"{image_id} {is_train}")
            lines["boxes"].append(f"{image_id} {bx:.1f} {by:.1f} {bw:.1f} {bh:.1f}")
            for part in range(len(PARTS)):
                visible = rng.random() < 0.8
                x, y = (bx + rng.uniform(0, bw), by + rng.uniform(0, bh)) if visible else (0.0, 0.0)
                lines["locs"].append(f"{image_id} {part + 1} {x:.1f} {y:.1f} {int(visible)}")
            if is_train:
                link = root / "train_imagefolder" / name
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    os.link(path, link)
            if image_id % 500 == 0:
                print(f"  data: {image_id}/{total} images ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    files = {"images.txt": lines["images"], "image_class_labels.txt": lines["labels"],
             "train_test_split.txt": lines["split"], "bounding_boxes.txt": lines["boxes"],
             "classes.txt": [f"{c + 1} {c + 1:03d}.Class_{c + 1:03d}" for c in range(CLASSES)],
             "parts/parts.txt": [f"{k + 1} {p}" for k, p in enumerate(PARTS)], "parts/part_locs.txt": lines["locs"]}
    for name, rows in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    marker.write_text(settings)
    return root


def cub_model(device: torch.device) -> PrototypeModel:
    """ResNet-34 ProtoPNet, 200 classes x 10 prototypes of 128 channels (1x1), 224 px, random weights."""
    torch.manual_seed(0)
    config = ProtoPNetConfig(class_names=tuple(f"{c + 1:03d}.Class_{c + 1:03d}" for c in range(CLASSES)),
                             backbone="resnet34", prototypes_per_class=PER_CLASS, prototype_dim=DIM,
                             input=InputSpec(image_size=(SIZE, SIZE)))
    return ProtoPNet(config).eval().to(device)


# ----- measuring -------------------------------------------------------------------------------
@dataclass
class Measured:
    stage: str
    images: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    rss_before_mb: float
    cuda_peak_mb: float | None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.images / self.wall_s if self.wall_s > 0 else float("nan")


def _status_mb(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB; the lifetime peak


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure(stage: str, images: int, device: torch.device, work: Callable[[], Any], note: str = "") -> Measured:
    """Run ``work`` once; wall and CPU time, peak resident memory (and CUDA memory) during it."""
    resettable = _reset_peak()
    before = _status_mb("VmRSS")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = _status_mb("VmHWM")
    cuda = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    if not resettable:
        note = (note + "; " if note else "") + "peak RSS is the process's lifetime peak"
    return Measured(stage, images, wall, cpu, peak, before, cuda, note)


def forward_only(model: PrototypeModel, dataset: ImageDataset, batch: int, device: torch.device, batches: int,
                 rounds: int = 2) -> Measured:
    """``model(x)`` on a few batches decoded beforehand (the floor of every stage): one untimed round
    (the first calls on a shape are slower), then ``rounds`` timed rounds over the same batches."""
    tensors = [b.images.to(device) for _, b in zip(range(batches), iterate_batches(dataset, model.input_spec, batch))]

    def run() -> None:
        with torch.no_grad():
            for x in tensors:
                model(x)

    def timed() -> None:
        for _ in range(rounds):
            run()

    run()
    count = sum(int(x.shape[0]) for x in tensors)
    return measure("forward only (preloaded)", count * rounds, device, timed,
                   f"{len(tensors)} batches x {rounds} rounds after a warm-up round, decoding excluded")


def warm_up(model: PrototypeModel, dataset: ImageDataset, batch: int, device: torch.device) -> None:
    """One untimed forward, so the first stage does not pay for allocator and kernel set-up."""
    x = next(iter(iterate_batches(dataset, model.input_spec, batch))).images.to(device)
    with torch.no_grad():
        model(x)


def load_checkpoint(args: argparse.Namespace, device: torch.device) -> tuple[PrototypeModel, Measured]:
    """The checkpoint read as the dashboard and the CLI read it, timed, with its peak memory."""
    from protoviz.models import load_model

    kept: list[PrototypeModel] = []
    size_mb = args.checkpoint.stat().st_size / 2**20
    row = measure("load checkpoint", 1, device,
                  lambda: kept.append(load_model(args.checkpoint, family=args.family, device=device)),
                  f"{size_mb:.0f} MB file, 1 = one model")
    return kept[0].eval(), row


def explain_pictures(model: PrototypeModel, dataset: ImageDataset, count: int) -> None:
    """What the Explain page computes for ``count`` images picked from a dataset folder."""
    from protoviz.heatmaps.explanation import explain_image
    from protoviz.heatmaps.methods.explain import explanation_with_method

    for start in range(0, count, EXPLAIN_CHUNK):
        pictures = [dataset[i].image for i in range(start, min(count, start + EXPLAIN_CHUNK))]
        for explanation in explain_image(model, pictures, top_k=10):
            explanation_with_method(model, explanation, "upsample")


def stages(args: argparse.Namespace, model: PrototypeModel, test: ImageDataset, train_folder: Path,
           device: torch.device) -> list[Measured]:
    from protoviz.compare.topk import TopKConfig, topk_patches
    from protoviz.explain import ExplainConfig, explain_dataset
    from protoviz.metrics.runner import EvaluationConfig, evaluate
    from protoviz.sources import project_sources

    batch, spec, out = args.batch_size, model.input_spec, []
    wanted = set(args.stages.split(","))
    results: dict[str, Any] = {}
    if "forward" in wanted:
        out.append(measure("bare pass (decode + forward)", len(test), device,
                           lambda: run_pass(model, iterate_batches(test, spec, batch), [])))
        out.append(forward_only(model, test, batch, device, min(4, -(-len(test) // batch))))
    if "explain" in wanted:
        count = min(args.explain_images, len(test))
        out.append(measure("explain (Explain page)", count, device, lambda: explain_pictures(model, test, count),
                           f"chunks of {EXPLAIN_CHUNK}, top 10, upsampled heatmaps"))
    if "evaluate" in wanted:
        config = EvaluationConfig(metrics=("consistency", "stability"), batch_size=batch)
        out.append(measure("evaluate: consistency + stability", len(test), device,
                           lambda: results.__setitem__("evaluate", evaluate(model, test, config)),
                           "1 noise draw"))
    if "topk" in wanted:
        out.append(measure("top-5 patches per prototype", len(test), device,
                           lambda: topk_patches(model, iterate_batches(test, spec, batch), TopKConfig(k=5),
                                                total=len(test))))
    if "global" in wanted:
        count = min(args.global_images, len(test))
        out.append(measure("global characteristics", count, device,
                           lambda: explain_dataset(model, test, ExplainConfig(), batch_size=batch, limit=count),
                           "7 forwards per image"))
    if "projection" in wanted:
        from protoviz.sources.folder import imagefolder_images
        count = len(imagefolder_images(train_folder))
        out.append(measure("projection (+ boxes, thumbnails)", count, device,
                           lambda: project_sources(model, train_folder, batch_size=batch),
                           "training images"))
    if "evaluate" in results:
        scores = results["evaluate"].scores
        print("  evaluate scores (random weights): " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()),
              file=sys.stderr)
    return out


def table(rows: list[Measured], bare: Measured | None, device: torch.device) -> str:
    """Markdown table; ``x bare``: the stage's images/s over the bare pass's (wall clock, CPU time)."""
    cuda = device.type == "cuda"
    head = ["stage", "images", "images/s", "x bare (wall)", "CPU s/image", "x bare (CPU)", "peak RSS MB",
            "RSS before MB"]
    head += ["CUDA max alloc MB"] if cuda else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        per_image = r.cpu_s / max(1, r.images)
        compared = bare is not None and not r.stage.startswith("load")
        cells = [r.stage + (f" ({r.note})" if r.note else ""), str(r.images), f"{r.rate:.2f}",
                 f"{r.rate / bare.rate:.2f}" if compared and bare else "-", f"{per_image:.3f}",
                 f"{(bare.cpu_s / bare.images) / per_image:.2f}" if compared and bare and per_image > 0 else "-",
                 f"{r.peak_rss_mb:.0f}", f"{r.rss_before_mb:.0f}"]
        cells += [f"{r.cuda_peak_mb:.0f}" if r.cuda_peak_mb is not None else "-"] if cuda else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_model_quietly(args: argparse.Namespace, device: torch.device) -> PrototypeModel:
    from protoviz.models import load_model

    return load_model(args.checkpoint, family=args.family, device=device).eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="400 test / 400 training images, 64 global and explain, batch 16")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="a checkpoint (protoviz or original research code); default: a random ResNet-34 model")
    parser.add_argument("--family", default=None, help="family of --checkpoint, where the file cannot tell")
    parser.add_argument("--test-images", type=int, default=None, help=f"default {CUB_TEST} (CUB's test split)")
    parser.add_argument("--train-images", type=int, default=None, help=f"default {CUB_TRAIN}")
    parser.add_argument("--global-images", type=int, default=None, help="images of the global stage (default 512)")
    parser.add_argument("--explain-images", type=int, default=None, help="images of the explain stage (default 128)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 (16 with --quick)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on the CPU")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("PROTOVIZ_CACHE_DIR",
                                                                          Path.home() / ".cache" / "protoviz")))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    args.test_images = args.test_images or (400 if args.quick else CUB_TEST)
    args.train_images = args.train_images or (400 if args.quick else CUB_TRAIN)
    args.global_images = args.global_images or (64 if args.quick else 512)
    args.explain_images = args.explain_images or (64 if args.quick else 128)
    args.batch_size = args.batch_size or (16 if args.quick else 32)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    root = args.cache / f"cub-scale-{args.train_images}-{args.test_images}"
    print(f"data: {root} ({args.train_images} train, {args.test_images} test images)", file=sys.stderr)
    make_cub_folder(root, args.train_images, args.test_images)
    test = open_dataset(root, split="test", crop_to_box=False)
    load = os.getloadavg()
    rows: list[Measured] = []
    if args.checkpoint is not None and "load" in args.stages.split(","):
        model, loaded = load_checkpoint(args, device)
        rows.append(loaded)
    elif args.checkpoint is not None:
        model = load_model_quietly(args, device)
    else:
        model = cub_model(device)
    if model.num_classes != CLASSES:
        print(f"  note: the model has {model.num_classes} classes, the data {CLASSES}", file=sys.stderr)
    warm_up(model, test, args.batch_size, device)
    rows += stages(args, model, test, root / "train_imagefolder", device)
    bare = next((r for r in rows if r.stage.startswith("bare pass")), None)
    height, width = model.input_spec.image_size
    weights = f"from {args.checkpoint.name}" if args.checkpoint is not None else "random weights"
    print(f"\n{model.family} {model.backbone_name}, {model.num_classes} classes, {model.num_prototypes} prototypes, "
          f"{height}x{width} px, {weights}; "
          f"{describe_device(device)}, {torch.get_num_threads()} threads, batch {args.batch_size}; "
          f"load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(table(rows, bare, device))
    if args.json:
        args.json.write_text(json.dumps({"device": describe_device(device), "threads": torch.get_num_threads(),
                                         "batch_size": args.batch_size, "rows": [vars(r) | {"rate": r.rate}
                                                                                 for r in rows]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Regenerate the bundled demo models and sample images from scratch.

    python -m protoviz.train.demo --out assets        (or: make demo-models)

Generates the synthetic dataset (``SyntheticConfig()`` defaults: 128 px, seed 0) into the dataset cache,
trains the two demo models of :data:`DEMOS` on its train split, measures their test accuracy, saves them
to ``OUT/models/*.safetensors`` with how they were made in their metadata, writes sample test images to
``OUT/samples/`` and a table of the results to ``OUT/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

import protoviz
from protoviz.data.demo import synthetic_dataset
from protoviz.data.synthetic import SyntheticConfig
from protoviz.device import describe_device, pick_device
from protoviz.errors import ProtovizError
from protoviz.models.base import InputSpec
from protoviz.models.checkpoint import save_model
from protoviz.models.protopnet import ProtoPNet, ProtoPNetConfig
from protoviz.models.registry import load_model
from protoviz.train.config import PRESETS, TrainConfig
from protoviz.train.data import ImageTensors, load_split
from protoviz.train.trainer import ProgressPrinter, accuracy, train_protopnet

MAX_BYTES = 15 * 1024 * 1024
FRESH = SyntheticConfig(seed=1, n_train_per_class=0)
"""An independent check set: the same generator with another seed (hyper-parameters were tuned on the
demo dataset's test split, which has no separate validation split, so its accuracy is optimistic)."""
INPUT = InputSpec(image_size=(128, 128))


@dataclass(frozen=True)
class DemoSpec:
    """One demo model: its file name, the model's architecture (all but class names) and its training."""

    filename: str
    backbone: str
    similarity: str
    prototype_sets: tuple[str, ...]
    prototypes_per_class: int
    prototype_dim: int
    train: TrainConfig

    def model_config(self, class_names: tuple[str, ...]) -> ProtoPNetConfig:
        return ProtoPNetConfig(class_names=class_names, backbone=self.backbone, similarity=self.similarity,
                               prototype_sets=self.prototype_sets, prototypes_per_class=self.prototypes_per_class,
                               prototype_dim=self.prototype_dim, add_on="regular", input=INPUT)


DEMOS: tuple[DemoSpec, ...] = (
    DemoSpec("protopnet_tinycnn_log.safetensors", "tiny_cnn", "log", ("prototypes",), 5, 64,
             PRESETS["demo_tinycnn_log"]),
    DemoSpec("stprotopnet_resnet18l3_cosine.safetensors", "resnet18_layer3", "cosine", ("support", "trivial"), 5, 64,
             PRESETS["demo_resnet18l3_cosine"]),
)


def train_demo(spec: DemoSpec, train: ImageTensors, test: ImageTensors, cropped_test: ImageTensors,
               fresh: ImageTensors | None, device: str, log: ProgressPrinter | None = None,
               monitor: bool = False) -> tuple[ProtoPNet, dict[str, Any]]:
    """Train one demo model; return it and the record of how it was made (accuracies, times, configs).

    ``monitor``: also log test accuracy after every epoch (for tuning; it is not used to pick anything)."""
    config = spec.train.replace(device=device)
    torch.manual_seed(config.seed)
    model = ProtoPNet(spec.model_config(train.class_names))
    result = train_protopnet(model, train, config, progress=log, log=log.log if log else None,
                             validation=test if monitor else None)
    record = {
        "test_accuracy": round(accuracy(model, test), 4),
        "test_accuracy_cropped_to_box": round(accuracy(model, cropped_test), 4),
        "train_accuracy": round(accuracy(model, train), 4),
        "fresh_accuracy": round(accuracy(model, fresh), 4) if fresh is not None else None,
        "test_images": len(test), "train_images": len(train),
        "train_seconds": round(result.seconds, 1),
        "train_device": describe_device(pick_device(device)),
        "seed": config.seed,
        "train_config": config.to_dict(),
        "history": result.summary()["history"],
    }
    return model, record


def write_samples(test: ImageTensors, folder: Path, count: int = 10) -> list[Path]:
    """``count`` test images, classes in turn (one of each class first), saved as ``<class>_<image id>.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    per_class = [torch.nonzero(test.labels == c).flatten().tolist() for c in range(len(test.class_names))]
    chosen = [idx[r] for r in range(max(map(len, per_class))) for idx in per_class if r < len(idx)][:count]
    paths = []
    for index in chosen:
        name = test.class_names[int(test.labels[index])].split(".", 1)[-1]
        path = folder / f"{name}_{test.image_ids[index]}.png"
        Image.fromarray(test.images[index].permute(1, 2, 0).numpy()).save(path, format="PNG")
        paths.append(path)
    return paths


def demo_records(out: Path) -> dict[str, dict[str, Any]]:
    """The ``extra`` metadata (how it was made) of each demo model present in ``OUT/models``, by file name."""
    records = {}
    for spec in DEMOS:
        path = out / "models" / spec.filename
        if path.exists():
            model = load_model(path)
            records[spec.filename] = {**model.metadata, "file_bytes": path.stat().st_size,
                                      "num_prototypes": model.num_prototypes, "backbone": spec.backbone,
                                      "similarity": spec.similarity, "prototype_sets": list(spec.prototype_sets)}
    return records


def write_readme(out: Path, dataset: SyntheticConfig) -> Path:
    """``OUT/README.md``: what the assets are, the commands that made them and the measured numbers."""
    records = demo_records(out)
    rows = "\n".join(
        f"| `models/{name}` | {r['backbone']} / {r['similarity']} / {', '.join(r['prototype_sets'])} | "
        f"{r['num_prototypes']} | {r['test_accuracy']:.3f} | {r['test_accuracy_cropped_to_box']:.3f} | "
        f"{r['fresh_accuracy']:.3f} | {r['train_seconds'] / 60:.1f} min | {r['file_bytes'] / 2**20:.1f} MB |"
        for name, r in records.items())
    made = "\n".join(f"- `{name}`: `{r['command']}` on {r['train_device']}, seed {r['seed']}, {r['made']}"
                      for name, r in records.items())
    samples = sorted(p.name for p in (out / "samples").glob("*.png"))
    text = f"""# Demo assets

Made from scratch, with no downloaded weights, by

    python -m protoviz.train.demo --out assets        (or: make demo-models)

It generates the synthetic part-annotated bird dataset (`protoviz.data.synthetic`, `SyntheticConfig()`
defaults: {dataset.image_size} px, {dataset.n_train_per_class} train and {dataset.n_test_per_class} test images
per class, 8 classes, seed {dataset.seed}), trains each model through `protoviz/train/`'s stages on the full
training images — backbone pre-training with a temporary linear head (a stand-in for the ImageNet weights
ProtoPNet starts from), warm-up, joint, push onto own-class training patches, last-layer fine-tuning — and
measures top-1 accuracy on the test split: full images; cropped to the object box (`open_dataset`'s default
for CUB layouts); and on a fresh test set drawn with another seed (`SyntheticConfig(seed=1)`), an
independent check, since the hyper-parameters were tuned on the first test split (the dataset has no
validation split).

| file | backbone / similarity / prototype sets | prototypes | test acc. | test acc. (box crop) | fresh-seed test acc. | training time | size |
|---|---|---|---|---|---|---|---|
{rows}

Training times were measured on the 2-core development machine while other jobs shared it, so they
depend on its load; the models were trained as separate processes (`--only`) with `OMP_NUM_THREADS=1`
(on a busy 2-core machine two OpenMP threads per process are many times slower; pass `--threads 1`).

The files in this folder were made by:
{made}

Each checkpoint's `extra` metadata (`protoviz info FILE`, `load_model(FILE).metadata`) records the accuracies,
seed, training and dataset configuration, per-epoch history, command, versions and device.

`samples/` holds {len(samples)} test images of the same dataset, named `<class>_<image id>.png`:
{", ".join(samples)}.
"""
    path = out / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m protoviz.train.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("assets"), help="assets folder (models/, samples/)")
    parser.add_argument("--data", type=Path, default=None, help="dataset cache folder (default: protoviz's cache)")
    parser.add_argument("--device", default="cpu", help="cpu (default, the recorded setting), cuda or auto")
    parser.add_argument("--only", choices=[d.filename for d in DEMOS], action="append", help="train only these")
    parser.add_argument("--seed", type=int, default=None, help="override the seed of every trained model")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is fastest on a busy machine)")
    parser.add_argument("--readme-only", action="store_true", help="only rewrite OUT/README.md from the models there")
    args = parser.parse_args(argv)
    command = "python -m protoviz.train.demo " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        if args.readme_only:
            write_readme(args.out, SyntheticConfig())
            return 0
        return _run(args.out, args.data, args.device, args.only, args.seed, command.strip())
    except ProtovizError as error:
        print(f"protoviz.train.demo: error: {error}", file=sys.stderr)
        return 2


def _run(out: Path, data: Path | None, device: str, only: list[str] | None, seed: int | None, command: str) -> int:
    dataset_config = SyntheticConfig()
    root = synthetic_dataset(dataset_config, root=data)
    train, test = load_split(root, "train", INPUT), load_split(root, "test", INPUT)
    cropped = load_split(root, "test", INPUT, crop_to_box=True)
    fresh = load_split(synthetic_dataset(FRESH, root=data), "test", INPUT)
    write_samples(test, out / "samples")
    printer = ProgressPrinter()
    for spec in DEMOS:
        if only and spec.filename not in only:
            continue
        printer.log(f"training {spec.filename} on {len(train)} images ...")
        if seed is not None:
            spec = dataclasses.replace(spec, train=spec.train.replace(seed=seed))
        model, record = train_demo(spec, train, test, cropped, fresh, device, printer)
        extra = {**record, "command": command, "protoviz_version": protoviz.__version__,
                 "torch_version": torch.__version__, "python": platform.python_version(),
                 "dataset": {"generator": "protoviz.data.synthetic", "config": dataclasses.asdict(dataset_config)},
                 "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        path = save_model(model, out / "models" / spec.filename, extra=extra)
        size = path.stat().st_size
        printer.log(f"{spec.filename}: test accuracy {record['test_accuracy']:.3f} "
                    f"(box crop {record['test_accuracy_cropped_to_box']:.3f}), {size / 2**20:.1f} MB, "
                    f"{record['train_seconds']:.0f} s")
        if size > MAX_BYTES:
            printer.log(f"warning: {path} is larger than {MAX_BYTES / 2**20:.0f} MB")
    write_readme(out, dataset_config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

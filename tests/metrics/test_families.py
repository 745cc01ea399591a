"""Every registered model family runs through every registered metric at once (tests generated from both
registries; tests/metrics/test_registry.py runs each metric alone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from protoviz.data.datasets import open_dataset
from protoviz.metrics.config import PartMetricConfig
from protoviz.metrics.parts import prototype_classes
from protoviz.metrics.registry import list_metrics
from protoviz.metrics.runner import EvaluationConfig, evaluate
from protoviz.models.registry import FAMILIES, build_model, list_families


def make_parts_dataset(root: Path, classes: int, per_class: int = 2, size: int = 48, masks: bool = False) -> Path:
    """A CUB-layout folder of random images, ``classes`` classes, three parts per image; with ``masks``, an
    object mask per image (masks/, a random rectangle of part ids)."""
    rng = np.random.default_rng(0)
    rows: dict[str, list[str]] = {k: [] for k in ("images", "labels", "split", "boxes", "locs")}
    for i in range(1, classes * per_class + 1):
        label = (i - 1) % classes + 1
        rel = f"{label:03d}.c/{i}.png"
        (root / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / "images" / rel)
        if masks:
            mask = np.zeros((size, size), dtype=np.uint8)
            top, left = rng.integers(0, size // 2, 2)
            mask[top:top + size // 2, left:left + size // 2] = rng.integers(1, 4)
            (root / "masks" / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask).save(root / "masks" / rel)
        rows["images"].append(f"{i} {rel}")
        rows["labels"].append(f"{i} {label}")
        rows["split"].append(f"{i} 0")
        rows["boxes"].append(f"{i} 2 3 40 41")
        rows["locs"] += [f"{i} {k} {rng.uniform(2, 42):.1f} {rng.uniform(3, 44):.1f} {int(k != 3 or i % 2)}"
                         for k in (1, 2, 3)]
    files = {"images.txt": rows["images"], "image_class_labels.txt": rows["labels"],
             "train_test_split.txt": rows["split"], "bounding_boxes.txt": rows["boxes"],
             "classes.txt": [f"{c} {c:03d}.c" for c in range(1, classes + 1)],
             "parts/parts.txt": ["1 left eye", "2 right eye", "3 beak"], "parts/part_locs.txt": rows["locs"]}
    for name, lines in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("".join(line + "\n" for line in lines))
    return root


@pytest.mark.parametrize("family", list_families())
def test_every_family_gets_every_score(family: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(family, FAMILIES.get(family).example_config()).eval()
    data = open_dataset(make_parts_dataset(tmp_path, model.num_classes, masks=True), crop_to_box=False)
    config = EvaluationConfig(metrics=tuple(list_metrics()), parts=PartMetricConfig(merge_left_right=True),
                              batch_size=4, deletion_steps=2, deletion_images_per_class=1)
    result = evaluate(model, data, config)
    assert len(result.prototypes) == model.num_prototypes
    assert result.parts.part_names == ("eye", "beak")
    assert set(result.results) == set(list_metrics())
    for key in ("accuracy", "consistency", "stability", "region_stability", "object_overlap"):
        assert 0.0 <= result.scores[key] <= 100.0, key
    relevance = prototype_classes(model)
    assert result.parts.n_images.tolist() == (relevance.float() @ torch.full((model.num_classes,), 2.0)).tolist()

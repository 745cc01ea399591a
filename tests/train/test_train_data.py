"""Training data in memory, augmentation that keeps class rules, and the losses on known inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from protoviz.errors import DatasetError
from protoviz.models.base import InputSpec
from protoviz.train.data import ImageTensors, augment, load_split
from protoviz.train.losses import cluster_separation, protopnet_loss
from tests.conftest import make_tiny_model


def test_load_split_reads_the_synthetic_cub_folder(tiny_synthetic: Path) -> None:
    train = load_split(tiny_synthetic, "train", InputSpec(image_size=(48, 48)))
    test = load_split(tiny_synthetic, "test", InputSpec(image_size=(48, 48)))
    assert train.images.shape == (24, 3, 48, 48) and train.images.dtype == torch.uint8
    assert len(test) == 8 and sorted(test.labels.tolist()) == list(range(8))
    assert train.class_names[0] == "001.base" and train.boxes is not None
    assert bool((train.boxes[:, :2] >= 0).all() and (train.boxes[:, 2:] <= 48).all())
    assert not set(train.image_ids) & set(test.image_ids)


def test_load_split_on_a_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(DatasetError):
        load_split(tmp_path / "nothing", "train", InputSpec(image_size=(32, 32)))


def test_flip_only_augmentation_is_the_image_or_its_mirror(patches: ImageTensors) -> None:
    unit = patches.images.float() / 255
    out = augment(unit, patches.boxes, torch.Generator().manual_seed(0), crop_probability=0.0)
    same = (out - unit).abs().amax(dim=(1, 2, 3)) < 1e-4
    mirrored = (out - unit.flip(3)).abs().amax(dim=(1, 2, 3)) < 1e-4
    assert bool((same | mirrored).all()) and bool(same.any()) and bool(mirrored.any())


def test_crops_never_cut_the_object_away() -> None:
    images = torch.zeros(16, 3, 64, 64)
    boxes = torch.tensor([[10.0, 20.0, 40.0, 50.0]]).repeat(16, 1)
    images[:, :, 20:50, 10:40] = 1.0
    out = augment(images, boxes, torch.Generator().manual_seed(0), crop_probability=1.0)
    assert bool((out.sum(dim=(1, 2, 3)) >= images.sum(dim=(1, 2, 3)) - 1e-3).all())  # zoomed in, never cut
    assert bool(((out - images).abs().amax(dim=(1, 2, 3)) > 0.1).all())  # every image was cropped


def test_cluster_and_separation_on_known_distances() -> None:
    identity = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # prototypes 0, 1 -> class 0; 2 -> class 1
    distances = torch.tensor([[3.0, 1.0, 2.0], [5.0, 4.0, 0.5]])
    cluster, separation = cluster_separation(distances, identity, torch.tensor([0, 1]))
    assert cluster.item() == pytest.approx((1.0 + 0.5) / 2)
    assert separation.item() == pytest.approx((2.0 + 4.0) / 2)


def test_support_set_gets_closeness_and_trivial_set_separation(patches: ImageTensors) -> None:
    model = make_tiny_model(similarity="cosine", sets=("support", "trivial"), classes=3, per_class=2)
    images = patches.images[:6].float() / 255
    labels = patches.labels[:6]
    base = protopnet_loss(model, images, labels, 0.0, 0.0, 0.0, 0.0)
    with_close = protopnet_loss(model, images, labels, 0.0, 0.0, 0.0, 1.0)
    with_sep = protopnet_loss(model, images, labels, 0.0, 1.0, 0.0, 0.0)
    assert torch.allclose(base.total, base.cross_entropy)
    assert with_close.total > base.total  # closeness adds the support set's separation distance
    assert with_sep.total < base.total  # separation of the trivial set is subtracted
    assert torch.allclose(base.logits, model(images).logits, atol=1e-5)

"""Top-k patches per prototype: the one-pass running merge equals a brute-force search."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import roi_align

from protoviz.compare.scan import tensor_batches
from protoviz.compare.topk import TopKAccumulator, TopKConfig, cell_boxes, topk_patches
from protoviz.errors import ConfigError, ModelError
from protoviz.models.base import PrototypeModel
from protoviz.passes import forward_maps, run_pass
from tests.conftest import make_tiny_model


def _images(count: int, seed: int = 3) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(count, 3, 64, 64)


def _brute_force(model, images: torch.Tensor, k: int, per_image: str):
    """Every candidate at once, sorted: (values (P, k), images (P, k), cells (P, k, 2))."""
    with torch.no_grad():
        maps, _, latent = forward_maps(model, images, with_latent=True)
    n, p, h, w = maps.shape
    if per_image == "best":
        best, pos = maps.flatten(2).max(dim=2)  # (N, P)
        values, image = best.t().sort(dim=1, descending=True)
        cell = pos.t().gather(1, image)
    else:
        flat = maps.permute(1, 0, 2, 3).reshape(p, n * h * w)
        values, order = flat.sort(dim=1, descending=True)
        image, cell = order // (h * w), order % (h * w)
    cells = torch.stack([cell // w, cell % w], dim=-1)[:, :k]
    return values[:, :k], image[:, :k], cells, latent


@pytest.mark.parametrize("per_image", ["best", "all"])
@pytest.mark.parametrize("batch_size", [1, 3, 50])
def test_running_topk_equals_brute_force(per_image: str, batch_size: int) -> None:
    model = make_tiny_model(seed=2, sets=("support", "trivial"))
    images = _images(11)
    result = topk_patches(model, tensor_batches(images, batch_size), TopKConfig(k=4, per_image=per_image))
    values, image, cells, latent = _brute_force(model, images, 4, per_image)
    torch.testing.assert_close(result.values, values)
    assert torch.equal(result.images, image)
    assert torch.equal(result.cells, cells)
    assert result.num_images == 11
    # the latents carried along are those at the winning cells
    expected = latent[image, :, cells[..., 0], cells[..., 1]]  # (P, k, D)
    torch.testing.assert_close(result.latents, expected)


def test_best_mode_takes_k_distinct_images() -> None:
    result = topk_patches(make_tiny_model(), tensor_batches(_images(9), 4), TopKConfig(k=5, per_image="best"))
    for row in result.images.tolist():
        assert len(set(row)) == 5


def test_fewer_candidates_than_k_leaves_empty_slots() -> None:
    result = topk_patches(make_tiny_model(), tensor_batches(_images(2), 2), TopKConfig(k=4, per_image="best"))
    assert result.filled().sum(dim=1).tolist() == [2] * 6
    assert torch.isinf(result.values[:, 2:]).all() and (result.images[:, 2:] == -1).all()


def test_thumbnails_are_crops_of_the_winning_boxes() -> None:
    model = make_tiny_model(seed=5)
    images = _images(6)
    config = TopKConfig(k=2, thumbnail_size=16)
    result = topk_patches(model, tensor_batches(images, 4), config)
    unit = (images * torch.tensor(model.input_spec.std).view(1, 3, 1, 1)
            + torch.tensor(model.input_spec.mean).view(1, 3, 1, 1)).clamp(0, 1)
    p, r = 3, 1
    y0, y1, x0, x1 = result.boxes[p, r].tolist()
    roi = torch.tensor([[0, x0, y0, x1, y1]], dtype=torch.float32)
    crop = roi_align(unit[int(result.images[p, r])][None], roi, output_size=(16, 16), aligned=True)[0]
    expected = (crop.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert result.thumbnails is not None and result.thumbnails.shape == (6, 2, 16, 16, 3)
    assert abs(result.thumbnails[p, r].astype(int) - expected.astype(int)).max() <= 1


def test_cell_boxes_cover_the_cell_and_stay_inside() -> None:
    cells = torch.tensor([[0, 0], [3, 3], [1, 2]])
    boxes = cell_boxes(cells, (4, 4), (64, 64), 2.0)
    assert boxes.tolist() == [[0, 24, 0, 24], [40, 64, 40, 64], [8, 40, 24, 56]]


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="k >= 1"):
        TopKConfig(k=0)
    with pytest.raises(ConfigError, match="per_image"):
        TopKConfig(per_image="some")


class _NoLatentFamily(PrototypeModel):
    """A family whose latent space is not exposed (as some imported research families)."""

    family = "test_no_latent"

    def __init__(self) -> None:
        inner = make_tiny_model()
        super().__init__(inner.input_spec, inner.class_names, inner.backbone_name, "log")
        self.inner = inner

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        raise ModelError("no latent space in this family")

    def similarity_maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.similarity_maps(x)

    @property
    def class_weights(self) -> torch.Tensor:
        return self.inner.class_weights

    @property
    def prototype_class_identity(self) -> torch.Tensor:
        return self.inner.prototype_class_identity

    def config_dict(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> _NoLatentFamily:
        return cls()

    @classmethod
    def example_config(cls) -> dict:
        return {}


def test_a_family_without_latents_still_gives_topk() -> None:
    model = _NoLatentFamily().eval()
    result = topk_patches(model, tensor_batches(_images(4), 2), TopKConfig(k=2))
    assert result.latents is None and result.filled().all()
    expected = topk_patches(model.inner, tensor_batches(_images(4), 2), TopKConfig(k=2))
    torch.testing.assert_close(result.values, expected.values)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_every_kept_crop_is_the_crop_of_its_box(batch_size: int) -> None:
    """Crops are written into free slots in place: after many merges (one or three images per batch, so that
    winners move between ranks and drop out often) every rank's crop is still the crop of its own box, also
    after two shards are merged."""
    model = make_tiny_model(seed=2)
    images = _images(10)
    config = TopKConfig(k=3, thumbnail_size=12)
    result = topk_patches(model, tensor_batches(images, batch_size), config)
    unit = (images * torch.tensor(model.input_spec.std).view(1, 3, 1, 1)
            + torch.tensor(model.input_spec.mean).view(1, 3, 1, 1)).clamp(0, 1)

    def expected(p: int, r: int) -> np.ndarray:
        y0, y1, x0, x1 = result.boxes[p, r].tolist()
        roi = torch.tensor([[0, x0, y0, x1, y1]], dtype=torch.float32)
        crop = roi_align(unit[int(result.images[p, r])][None], roi, output_size=(12, 12), aligned=True)[0]
        return (crop.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()

    assert result.thumbnails is not None and bool(result.filled().all())
    for p in range(model.num_prototypes):
        for r in range(3):
            assert abs(result.thumbnails[p, r].astype(int) - expected(p, r).astype(int)).max() <= 1, (p, r)
    first, second = TopKAccumulator(config), TopKAccumulator(config)  # shards: even and odd batches
    for i, batch in enumerate(tensor_batches(images, batch_size)):
        run_pass(model, [batch], [first if i % 2 == 0 else second])
    first.merge(second)
    merged = first.result()
    np.testing.assert_array_equal(merged.images.numpy(), result.images.numpy())
    assert merged.thumbnails is not None
    np.testing.assert_array_equal(merged.thumbnails, result.thumbnails)

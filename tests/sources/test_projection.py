"""Re-projection: each prototype's nearest eligible patch, as its family's push picks it, in one streaming pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from protoviz.compare.scan import run_pass, tensor_batches
from protoviz.errors import DatasetError, ModelError
from protoviz.heatmaps.boxes import percentile_boxes
from protoviz.heatmaps.upsample import upsample_maps
from protoviz.models.registry import FAMILIES, build_model
from protoviz.sources import project_sources
from protoviz.sources.criteria import RULES, subtree_classes
from protoviz.sources.projection import ProjectionAccumulator
from protoviz.train.data import ImageTensors
from protoviz.train.push import nearest_own_class_patches
from tests.conftest import make_tiny_model
from tests.sources.conftest import folder_tensors, lively, make_image_folder


def _model(family: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = lively(build_model(family, FAMILIES.get(family).example_config()).eval())
    if family == "prototree":  # leaves favouring different classes, so the subtree constraint matters
        with torch.no_grad():
            model.leaf_params.copy_(torch.eye(3)[[0, 1, 2]] * 5)
    return model


def _reference(model: torch.nn.Module, root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brute force over the whole set: per prototype the first (image, cell) with the least eligible distance."""
    rule = RULES[model.family]
    _unit, x, labels, _files = folder_tensors(root, model)
    with torch.no_grad():
        d = rule.distance_maps(model, x).double()  # (N, P, h, w)
    allowed = rule.eligible(model).cpu()[:, labels].t()  # (N, P)
    d[~allowed] = float("inf")
    if rule.column_major:
        d = d.transpose(2, 3)
    _n, p, a, b = d.shape
    flat = d.permute(1, 0, 2, 3).reshape(p, -1)
    best = flat.argmin(dim=1)
    image, cell = best // (a * b), best % (a * b)
    rows, cols = (cell % a, cell // a) if rule.column_major else (cell // b, cell % b)
    return image.numpy(), np.stack([rows.numpy(), cols.numpy()], 1), flat.min(dim=1).values.numpy()


@pytest.mark.parametrize("family", sorted(RULES))
def test_projection_equals_brute_force(family: str, tmp_path: Path) -> None:
    model = _model(family)
    root = make_image_folder(tmp_path / "data", per_class=3)
    image, cell, distance = _reference(model, root)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for batch_size in (1, 4, 64):
        projection = project_sources(model, root, batch_size=batch_size)
        found = projection.result
        assert found.image.tolist() == image.tolist(), batch_size
        assert found.cell.tolist() == cell.tolist(), batch_size
        for j, source in enumerate(projection.sources):
            assert source is not None and source.map_location == tuple(cell[j])
            assert source.image_id == projection.images.relative[image[j]]
            assert source.distance == pytest.approx(distance[j], abs=1e-4)
            assert source.class_index == projection.images.labels[image[j]]
            assert RULES[family].eligible(model)[j, source.class_index]
            assert source.origin == "projection" and source.image_thumbnail is not None
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # no weight changed


def test_pushed_model_is_found_at_distance_zero_with_its_own_box(tmp_path: Path) -> None:
    model = lively(make_tiny_model(classes=3, per_class=2))
    root = make_image_folder(tmp_path / "data")
    _unit, x, labels, _files = folder_tensors(root, model)
    with torch.no_grad():
        latent = model.add_on_layers(model.features(x))  # (N, D, 4, 4)
    picks = {0: (1, 1, 2), 1: (3, 2, 1), 2: (5, 1, 1), 3: (4, 2, 2), 4: (9, 2, 1), 5: (8, 1, 2)}  # j: image, row, col
    with torch.no_grad():
        for j, (i, r, c) in picks.items():
            assert labels[i] == j // 2
            model.prototype_vectors[j, :, 0, 0] = latent[i, :, r, c]
    projection = project_sources(model, root, batch_size=5)
    with torch.no_grad():
        own = model.similarity_maps(x)
    for j, (i, r, c) in picks.items():
        source = projection.sources[j]
        assert source is not None and (int(projection.result.image[j]), source.map_location) == (i, (r, c))
        assert source.distance == pytest.approx(0, abs=1e-5)
        box = percentile_boxes(upsample_maps(own[i, j][None], (64, 64)))[0].tolist()
        assert list(source.box) == box


def test_agrees_with_protoviz_training_push(tmp_path: Path) -> None:
    model = lively(make_tiny_model(classes=3, per_class=2, seed=3))
    root = make_image_folder(tmp_path / "data", seed=5)
    unit, _x, labels, files = folder_tensors(root, model)
    data = ImageTensors((unit * 255).round().to(torch.uint8), labels, tuple(str(f) for f in files), model.class_names)
    distance, image, location, _vectors = nearest_own_class_patches(model, data, batch_size=4)
    found = project_sources(model, root, batch_size=3).result
    assert found.image.tolist() == image.tolist()
    assert (found.cell[:, 0] * 4 + found.cell[:, 1]).tolist() == location.tolist()
    assert torch.allclose(found.distance, distance, atol=1e-5)


def test_ties_go_to_the_earliest_image(tmp_path: Path) -> None:
    model = lively(make_tiny_model(classes=3, per_class=2))
    root = make_image_folder(tmp_path / "data", duplicate_first=True)
    _unit, x, _labels, _files = folder_tensors(root, model)
    with torch.no_grad():
        latent = model.add_on_layers(model.features(x))
        model.prototype_vectors[0, :, 0, 0] = latent[1, :, 2, 2]  # image 1 is a copy of image 0
    for batch_size in (1, 8):
        found = project_sources(model, root, batch_size=batch_size).result
        assert int(found.image[0]) == 0 and found.cell[0].tolist() == [2, 2]


def test_shards_merge_to_the_whole_pass(tmp_path: Path) -> None:
    model = _model("protopool")
    root = make_image_folder(tmp_path / "data", per_class=4)
    _unit, x, labels, _files = folder_tensors(root, model)
    whole = ProjectionAccumulator(model)
    run_pass(model, tensor_batches(x, 5, labels), [whole])
    halves = [ProjectionAccumulator(model), ProjectionAccumulator(model)]
    run_pass(model, tensor_batches(x[:7], 3, labels[:7]), [halves[0]])
    shifted = [b.__class__(images=b.images, indices=b.indices + 7, labels=b.labels) for b in tensor_batches(x[7:], 2, labels[7:])]
    run_pass(model, shifted, [halves[1]])
    halves[1].merge(halves[0])  # order does not matter
    expected, merged = whole.result(), halves[1].result()
    assert merged.image.tolist() == expected.image.tolist() and merged.cell.tolist() == expected.cell.tolist()


def test_family_constraints() -> None:
    tree = _model("prototree")
    assert subtree_classes(tree).tolist() == [[True, True, True], [False, True, True]]
    pool = _model("protopool")
    assert torch.equal(RULES["protopool"].eligible(pool), pool.prototype_class_identity > 0)
    assert bool(RULES["pipnet"].eligible(_model("pipnet")).all())


def test_refusals(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "data", classes=("a", "b"))
    with pytest.raises(DatasetError, match="2 class folders but the model has 3"):
        project_sources(make_tiny_model(), root)
    with pytest.raises(ModelError, match="deformable"):
        project_sources(_model("deformable"), root)
    model = make_tiny_model().train()
    project_sources(model, make_image_folder(tmp_path / "three"))
    assert model.training  # the mode is restored

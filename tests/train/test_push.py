"""Push: every prototype becomes exactly a latent patch of its own class, with a recorded source."""

from __future__ import annotations

import pytest
import torch

from protoviz.heatmaps.boxes import percentile_boxes
from protoviz.heatmaps.upsample import upsample_maps
from protoviz.train.data import ImageTensors, to_model_input
from protoviz.train.push import push_prototypes
from tests.conftest import make_tiny_model


@pytest.mark.parametrize(("similarity", "sets"), [("log", ("prototypes",)), ("cosine", ("support", "trivial"))])
def test_push_projects_each_prototype_onto_an_own_class_patch(patches: ImageTensors, similarity: str,
                                                              sets: tuple[str, ...]) -> None:
    model = make_tiny_model(similarity=similarity, sets=sets, classes=3, per_class=2)
    # one batch, so the latents recomputed below come from the very same computation (bit for bit)
    sources = push_prototypes(model, patches, batch_size=len(patches), image_thumbnail=32, patch_thumbnail=16)
    assert model.prototype_sources is sources and len(sources) == model.num_prototypes
    prototype_class = model.prototype_class_identity.argmax(dim=1)
    ids = list(patches.image_ids)
    with torch.no_grad():
        latents = model.set_latents(to_model_input(patches.images, model))
    for name, (start, end) in model.prototype_groups().items():
        vectors = model._set_parts(name)[1].flatten(1)
        for j in range(start, end):
            source = sources[j]
            assert source is not None
            index = ids.index(source.image_id)
            assert int(patches.labels[index]) == int(prototype_class[j]) == source.class_index
            row, col = source.map_location
            assert torch.equal(vectors[j - start], latents[name][index, :, row, col])
            y0, y1, x0, x1 = source.box
            assert 0 <= y0 < y1 <= 64 and 0 <= x0 < x1 <= 64
            assert source.image_thumbnail.shape == (32, 32, 3) and source.image_thumbnail.dtype.name == "uint8"
            assert max(source.patch_thumbnail.shape[:2]) == 16


def test_pushed_prototype_is_nearest_among_own_class_patches(patches: ImageTensors) -> None:
    model = make_tiny_model(classes=3, per_class=2)
    sources = push_prototypes(model, patches, batch_size=5)  # several batches
    with torch.no_grad():
        maps = model.similarity_maps(to_model_input(patches.images, model))  # (N, P, h, w)
    own = patches.labels[:, None] == model.prototype_class_identity.argmax(dim=1)[None]  # (N, P)
    best = maps.flatten(2).amax(dim=2).masked_fill(~own, float("-inf")).amax(dim=0)  # (P,)
    ids = list(patches.image_ids)
    at_source = torch.stack([maps[ids.index(s.image_id), j, s.map_location[0], s.map_location[1]]
                             for j, s in enumerate(sources)])
    assert torch.allclose(at_source, best, rtol=1e-4)


def test_source_box_is_the_95th_percentile_box_of_the_upsampled_map(patches: ImageTensors) -> None:
    model = make_tiny_model(classes=3, per_class=2).double()  # float64: no batch-dependent rounding
    sources = push_prototypes(model, patches)
    ids = list(patches.image_ids)
    with torch.no_grad():
        for j, source in enumerate(sources[:3]):
            image = patches.images[ids.index(source.image_id)][None]
            sim = model.similarity_maps(to_model_input(image, model))[0, j]
            expected = percentile_boxes(upsample_maps(sim[None], (64, 64)))[0]
            assert tuple(expected.tolist()) == source.box


def test_push_leaves_classes_without_images_unsourced(patches: ImageTensors) -> None:
    model = make_tiny_model(classes=3, per_class=2)
    only_red = patches.subset(torch.nonzero(patches.labels == 0).flatten())
    before = model.prototype_vectors.detach().clone()
    sources = push_prototypes(model, only_red)
    assert [s is not None for s in sources] == [True, True, False, False, False, False]
    assert torch.equal(model.prototype_vectors[2:], before[2:])

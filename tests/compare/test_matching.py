"""Prototype matching recovers a known permutation; near-duplicates and unmatched prototypes are found."""

from __future__ import annotations

import copy

import pytest
import torch

from protoviz.compare.matching import (
    PROFILE_KINDS,
    ProfileConfig,
    activation_profiles,
    duplicate_flags,
    duplicate_rule,
    match_prototypes,
    near_duplicates,
    profile_correlation,
    profile_of,
)
from protoviz.compare.scan import tensor_batches
from protoviz.errors import ConfigError
from tests.conftest import make_tiny_model


def _shuffled_copy(model, permutation: torch.Tensor):
    """A copy whose prototype j is the original's prototype permutation[j] (vectors, identity and
    last-layer columns permuted consistently), so it computes the same logits."""
    copied = copy.deepcopy(model)
    with torch.no_grad():
        copied.prototype_vectors.copy_(model.prototype_vectors[permutation])
        copied.class_identity.copy_(model.class_identity[permutation])
        copied.last_layer.weight.copy_(model.last_layer.weight[:, permutation])
    return copied


@pytest.mark.parametrize("kind", PROFILE_KINDS)
def test_matching_recovers_a_known_permutation(kind: str) -> None:
    model = make_tiny_model(seed=4, classes=4, per_class=3)
    permutation = torch.randperm(model.num_prototypes, generator=torch.Generator().manual_seed(7))
    shuffled = _shuffled_copy(model, permutation)
    torch.manual_seed(0)
    images = torch.randn(16, 3, 64, 64)
    with torch.no_grad():  # the copy is the same model: same logits
        torch.testing.assert_close(model(images).logits, shuffled(images).logits)
    config = ProfileConfig(kind=kind, grid=2)
    profiles_a = activation_profiles(model, tensor_batches(images, 5), config)
    profiles_b = activation_profiles(shuffled, tensor_batches(images, 5), config)
    assert ProfileConfig().kind == "parts"  # the default measures parts
    assert profiles_a.shape == ((12, 16) if kind == "max" else (12, 64))
    matching = match_prototypes(profiles_a, profiles_b, threshold=0.9)
    expected = {int(permutation[j]): j for j in range(model.num_prototypes)}
    assert matching.permutation() == expected
    assert all(pair.correlation == pytest.approx(1.0) for pair in matching.pairs)
    assert matching.unmatched_a == () and matching.unmatched_b == ()


def test_prototypes_without_counterpart_are_reported() -> None:
    generator = torch.Generator().manual_seed(1)
    a = torch.rand(4, 40, generator=generator, dtype=torch.float64)
    extra = torch.rand(2, 40, generator=generator, dtype=torch.float64)
    b = torch.cat([a[[2, 0, 3, 1]] * 3 + 1, extra])  # correlation is invariant to scale and shift
    matching = match_prototypes(a, b, threshold=0.9)
    assert matching.permutation() == {2: 0, 0: 1, 3: 2, 1: 3}
    assert matching.unmatched_a == () and matching.unmatched_b == (4, 5)
    strict = match_prototypes(a, torch.rand(4, 40, generator=generator, dtype=torch.float64), threshold=0.9)
    assert strict.pairs == () and len(strict.weak) == 4 and strict.unmatched_a == (0, 1, 2, 3)


def test_profile_correlation_matches_numpy_and_handles_constant_rows() -> None:
    generator = torch.Generator().manual_seed(2)
    a = torch.rand(3, 10, generator=generator, dtype=torch.float64)
    b = torch.cat([torch.rand(2, 10, generator=generator, dtype=torch.float64), torch.ones(1, 10, dtype=torch.float64)])
    corr = profile_correlation(a, b)
    import numpy as np

    reference = np.corrcoef(np.concatenate([a.numpy(), b[:2].numpy()]))[:3, 3:]
    assert np.allclose(corr[:, :2].numpy(), reference)
    assert torch.equal(corr[:, 2], torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ConfigError, match="same probe set"):
        profile_correlation(a, b[:, :5])


def test_near_duplicates_by_profile_or_embedding() -> None:
    generator = torch.Generator().manual_seed(3)
    profiles = torch.rand(5, 30, generator=generator, dtype=torch.float64)
    profiles[4] = profiles[1] * 2 + 0.5
    embeddings = torch.rand(5, 8, generator=generator, dtype=torch.float64) - 0.5
    embeddings[3] = embeddings[0] + 1e-4
    by_profile = near_duplicates(profiles, None, profile_threshold=0.99)
    assert [(p.a, p.b) for p in by_profile] == [(1, 4)] and by_profile[0].cosine is None
    both_ways = near_duplicates(profiles, embeddings, 0.99, 0.99, require_both=False)
    assert {(p.a, p.b) for p in both_ways} == {(1, 4), (0, 3)}
    assert near_duplicates(profiles, embeddings, 0.99, 0.99) == []  # by default both measures must agree
    embeddings[4] = embeddings[1] * 1.0001
    assert [(p.a, p.b) for p in near_duplicates(profiles, embeddings, 0.99, 0.99)] == [(1, 4)]
    assert duplicate_flags(both_ways, 5).tolist() == [True, True, False, True, True]
    with pytest.raises(ConfigError):
        near_duplicates(None, None)


def test_embedding_cosine_is_centred_and_optionally_scale_invariant() -> None:
    generator = torch.Generator().manual_seed(5)
    positive = torch.rand(6, 16, generator=generator, dtype=torch.float64) * 0.2 + 0.5  # like sigmoid latents
    raw = torch.nn.functional.normalize(positive, dim=1)
    assert (raw @ raw.t()).min() > 0.9  # raw cosines would flag every pair
    assert near_duplicates(None, positive, cosine_threshold=0.95) == []
    scaled = positive.clone()
    scaled[4] = scaled[1] * 2.0  # the same direction: one prototype for a cosine model, two for an L2 one
    assert [(p.a, p.b) for p in near_duplicates(None, scaled, cosine_threshold=0.99, scale_invariant=True)] == [(1, 4)]
    assert near_duplicates(None, scaled, cosine_threshold=0.99) == []


def _class_and_part_maps(order: list[int], strength: torch.Tensor, cells: torch.Tensor, classes: int, parts: int
                         ) -> torch.Tensor:
    """Similarity maps (N, C * K, 4, 4) of a model whose prototype j = order[j] sees part (c, k) = divmod(order[j], K):
    on an image of class c it fires with the image's ``strength`` (the same for all of c's prototypes, so
    it says the class) at the cell ``cells[n, k]`` of that image's part k (so it says the part)."""
    count = strength.shape[0]
    maps = torch.full((count, classes * parts, 4, 4), 0.1, dtype=torch.float64)
    labels = torch.arange(count) % classes
    for j, role in enumerate(order):
        c, k = divmod(role, parts)
        for n in torch.nonzero(labels == c).flatten().tolist():
            maps[n, j].view(-1)[cells[n, k]] = strength[n]
    return maps


def test_parts_profile_tells_parts_apart_where_max_only_sees_the_class() -> None:
    """Known answer: B's prototypes are A's, permuted within each class, with other per-image strengths.
    Every prototype of a class has the same max per image, so 'max' cannot tell them apart (equal
    correlations); 'parts' finds each one's part exactly."""
    classes, parts, count = 3, 3, 30
    generator = torch.Generator().manual_seed(11)
    cells = torch.stack([torch.randperm(16, generator=generator)[:parts] for _ in range(count)])  # (N, K) distinct
    order_b = [1, 2, 0, 5, 3, 4, 8, 6, 7]  # B's prototype j sees A's prototype order_b[j]
    maps_a = _class_and_part_maps(list(range(9)), 1 + torch.rand(count, generator=generator, dtype=torch.float64),
                                  cells, classes, parts)
    maps_b = _class_and_part_maps(order_b, 2 + torch.rand(count, generator=generator, dtype=torch.float64),
                                  cells, classes, parts)
    expected = {role: j for j, role in enumerate(order_b)}
    parts_config = ProfileConfig(kind="parts", grid=4)
    matching = match_prototypes(profile_of(maps_a, parts_config), profile_of(maps_b, parts_config), threshold=0.5)
    assert matching.permutation() == expected
    corr = matching.correlation
    for a, b in expected.items():
        wrong = [j for j in range(9) if j // parts == b // parts and j != b]
        assert corr[a, b] > 0.9 and corr[a, wrong].max() < 0.2
    by_max = profile_correlation(profile_of(maps_a, ProfileConfig(kind="max")),
                                 profile_of(maps_b, ProfileConfig(kind="max")))
    for a in range(9):  # the same correlation with every prototype of the class: parts invisible
        same_class = by_max[a, (a // parts) * parts:(a // parts + 1) * parts]
        assert torch.allclose(same_class, same_class[0].expand(parts))


def test_parts_profile_needs_cells_and_duplicate_rule_says_its_thresholds() -> None:
    with pytest.raises(ConfigError, match="2x2"):
        ProfileConfig(kind="parts", grid=1)
    rule = duplicate_rule(0.99, 0.98, True, "parts", True, 200)
    assert "r = 0.99" in rule and "cosine is above 0.98" in rule and " and " in rule and "200 probe images" in rule
    assert " or " in duplicate_rule(require_both=False)
    assert "cosine" not in duplicate_rule(embeddings=False)

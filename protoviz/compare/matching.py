"""Cross-model prototype matching and near-duplicate prototypes within one model.

A prototype is described by its activation profile over a probe set of N images:
- ``"parts"`` (default): *where* in each image it fires: its similarity map average-pooled to ``grid`` x
  ``grid`` cells, minus that image's mean cell, flattened, (P, N * grid * grid). Subtracting the
  per-image mean removes how much the prototype fires on the image as a whole, which mostly tells the
  image's class; what is left is the spatial pattern, i.e. the part. Images where the prototype has a
  clear peak weigh the most (their centred cells are largest).
- ``"map"``: the pooled map pattern without centring, (P, N * grid * grid): place and strength.
- ``"max"``: its max similarity in each image, (P, N): how much, not where. Two prototypes of the
  same class correlate highly under it whatever part each one sees.
Pooling to a common grid lets models with different map sizes meet.

Two prototypes match when their profiles correlate (Pearson). Between two models the one-to-one
assignment maximising the total correlation is Hungarian's (``linear_sum_assignment`` on -corr);
assigned pairs whose correlation is below ``threshold`` count as "no counterpart".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from protoviz.compare.scan import PassStep, ProgressFn, run_pass
from protoviz.errors import ConfigError
from protoviz.models.base import PrototypeModel

PROFILE_KINDS = ("parts", "map", "max")
PROFILE_HELP: dict[str, str] = {
    "parts": "where in each image the prototype fires (pooled map minus the image's mean): the part",
    "map": "its pooled similarity map per image: place and strength together",
    "max": "its max similarity per image: how much, not where (mostly the image's class)",
}


@dataclass(frozen=True)
class ProfileConfig:
    """``kind`` one of :data:`PROFILE_KINDS`; ``grid`` cells per side for 'parts' and 'map' profiles."""

    kind: str = "parts"
    grid: int = 4

    def __post_init__(self) -> None:
        if self.kind not in PROFILE_KINDS:
            raise ConfigError(f"profile kind must be one of {PROFILE_KINDS}, got {self.kind!r}")
        if self.grid < 1:
            raise ConfigError(f"profile grid must be >= 1, got {self.grid}")
        if self.kind == "parts" and self.grid < 2:
            raise ConfigError("a 'parts' profile needs a grid of at least 2x2 cells (one cell has no 'where')")


class ProfileAccumulator:
    """Collects activation profiles (P, N) or (P, N * grid^2) during a pass, on the CPU."""

    needs_latent = False

    def __init__(self, config: ProfileConfig = ProfileConfig()):
        self.config = config
        self._parts: list[Tensor] = []

    def update(self, step: PassStep) -> None:
        self._parts.append(profile_of(step.maps, self.config).double().cpu())

    def result(self) -> Tensor:
        if not self._parts:
            raise ConfigError("no batch was scanned: the profiles are empty")
        return torch.cat(self._parts, dim=1)


def profile_of(maps: Tensor, config: ProfileConfig = ProfileConfig()) -> Tensor:
    """Similarity maps (B, P, h, w) -> this batch's profile columns: (P, B) for 'max', else (P, B * g * g)
    (image-major: the g * g cells of image 0, then of image 1 ...)."""
    if config.kind == "max":
        return maps.flatten(2).amax(dim=2).t()
    pooled = F.adaptive_avg_pool2d(maps, config.grid).flatten(2)  # (B, P, g * g)
    if config.kind == "parts":
        pooled = pooled - pooled.mean(dim=2, keepdim=True)
    return pooled.transpose(0, 1).flatten(1)


def activation_profiles(model: PrototypeModel, batches: Iterable[Any], config: ProfileConfig = ProfileConfig(),
                        total: int | None = None, progress: ProgressFn | None = None) -> Tensor:
    """Activation profiles of the model's prototypes over the probe images: (P, N) or (P, N * grid^2)."""
    accumulator = ProfileAccumulator(config)
    run_pass(model, batches, [accumulator], total=total, progress=progress)
    return accumulator.result()


def profile_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of every row of a (P, N) with every row of b (Q, N): (P, Q).

    A constant profile (a prototype that never varies over the probe set) correlates 0 with everything.
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ConfigError(f"profiles must be (P, N) and (Q, N) over the same probe set, got {tuple(a.shape)} "
                          f"and {tuple(b.shape)}")
    if a.shape[1] < 2:
        raise ConfigError("correlating profiles needs at least 2 probe values per prototype")
    a = a.double() - a.double().mean(dim=1, keepdim=True)
    b = b.double() - b.double().mean(dim=1, keepdim=True)
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (a @ b.t()).clamp(-1, 1)


@dataclass(frozen=True)
class PrototypePair:
    """Prototype ``a`` of the first model assigned to ``b`` of the second, with their correlation."""

    a: int
    b: int
    correlation: float


@dataclass(frozen=True)
class Matching:
    """Hungarian matching of two models' prototypes.

    correlation: (P, Q); pairs: assigned pairs at or above ``threshold``, strongest first;
    weak: assigned pairs below it; unmatched_a / unmatched_b: prototypes with no counterpart
    (left over by the assignment, or only weakly assigned).
    """

    correlation: Tensor
    pairs: tuple[PrototypePair, ...]
    weak: tuple[PrototypePair, ...]
    unmatched_a: tuple[int, ...]
    unmatched_b: tuple[int, ...]
    threshold: float

    def permutation(self) -> dict[int, int]:
        """Prototype of the first model -> its counterpart in the second (strong pairs only)."""
        return {pair.a: pair.b for pair in self.pairs}


def match_prototypes(profiles_a: Tensor, profiles_b: Tensor, threshold: float = 0.5) -> Matching:
    """Match prototypes of two models by their profiles (P, N) and (Q, N) over the same probe images."""
    if not -1.0 <= threshold <= 1.0:
        raise ConfigError(f"the match threshold is a correlation in [-1, 1], got {threshold}")
    corr = profile_correlation(profiles_a, profiles_b)
    rows, cols = linear_sum_assignment(-corr.numpy())
    assigned = [PrototypePair(int(i), int(j), float(corr[i, j])) for i, j in zip(rows, cols)]
    assigned.sort(key=lambda pair: -pair.correlation)
    strong = tuple(p for p in assigned if p.correlation >= threshold)
    weak = tuple(p for p in assigned if p.correlation < threshold)
    matched_a = {p.a for p in strong}
    matched_b = {p.b for p in strong}
    return Matching(
        correlation=corr, pairs=strong, weak=weak, threshold=threshold,
        unmatched_a=tuple(i for i in range(corr.shape[0]) if i not in matched_a),
        unmatched_b=tuple(j for j in range(corr.shape[1]) if j not in matched_b),
    )


@dataclass(frozen=True)
class DuplicatePair:
    """Two prototypes of one model that look alike; ``None`` where that measure was not computed."""

    a: int
    b: int
    correlation: float | None
    cosine: float | None


def embedding_cosine(embeddings: Tensor, scale_invariant: bool = False) -> Tensor:
    """Centred cosine similarity of prototype vectors (P, D) with each other: (P, P).

    The mean prototype is subtracted first: ProtoPNet's prototypes live in a sigmoid latent space where
    every vector is positive, so raw cosines are all close to 1 and say nothing. ``scale_invariant``
    (cosine-similarity families, where p and 2p are the same prototype) normalises before centring.
    """
    vectors = embeddings.double()
    if scale_invariant:
        vectors = F.normalize(vectors, dim=1)
    centred = F.normalize(vectors - vectors.mean(dim=0, keepdim=True), dim=1)
    return centred @ centred.t()


DUPLICATE_THRESHOLD = 0.99


def duplicate_rule(profile_threshold: float = DUPLICATE_THRESHOLD, cosine_threshold: float = DUPLICATE_THRESHOLD,
                   require_both: bool = True, profile_kind: str | None = "parts", embeddings: bool = True,
                   probe_images: int | None = None) -> str:
    """One sentence saying when two prototypes of one model are flagged as near-duplicates."""
    images = f"the {probe_images} probe images" if probe_images else "the probe images"
    tests = []
    if profile_kind is not None:
        tests.append(f"their '{profile_kind}' activation profiles over {images} correlate above r = "
                     f"{profile_threshold:g} (they fire on the same images in the same places)")
    if embeddings:
        tests.append(f"their prototype vectors' centred cosine is above {cosine_threshold:g} (nearly the same "
                     "vector)")
    joined = (" and " if require_both else " or ").join(tests)
    return (f"Two prototypes are flagged as near-duplicates when {joined}. Such a pair gives the same "
            "evidence twice; one of the two could be pruned with little change to the decisions.")


def near_duplicates(profiles: Tensor | None = None, embeddings: Tensor | None = None,
                    profile_threshold: float = DUPLICATE_THRESHOLD, cosine_threshold: float = DUPLICATE_THRESHOLD,
                    require_both: bool = True, scale_invariant: bool = False) -> list[DuplicatePair]:
    """Pairs i < j with profile correlation > ``profile_threshold`` and/or centred embedding cosine >
    ``cosine_threshold`` (``require_both``: and, the default, since either measure alone flags pairs
    that only share a class or a direction; else or), from profiles (P, N), embeddings (P, D);
    ``scale_invariant`` as in :func:`embedding_cosine`. With only one of the two, that one decides."""
    if profiles is None and embeddings is None:
        raise ConfigError("near-duplicate search needs activation profiles, prototype embeddings, or both")
    corr = profile_correlation(profiles, profiles) if profiles is not None else None
    cos = embedding_cosine(embeddings, scale_invariant) if embeddings is not None else None
    count = (corr if corr is not None else cos).shape[0]  # type: ignore[union-attr]
    upper = torch.ones(count, count, dtype=torch.bool).triu(diagonal=1)
    flags = [m > t for m, t in ((corr, profile_threshold), (cos, cosine_threshold)) if m is not None]
    hit = flags[0]
    for flag in flags[1:]:
        hit = hit & flag if require_both else hit | flag
    found = (hit & upper).nonzero().tolist()
    pairs = [DuplicatePair(i, j, None if corr is None else float(corr[i, j]),
                           None if cos is None else float(cos[i, j])) for i, j in found]
    return sorted(pairs, key=lambda p: -max(v for v in (p.correlation, p.cosine) if v is not None))


def duplicate_flags(pairs: list[DuplicatePair], num_prototypes: int) -> np.ndarray:
    """(P,) bool: True for each prototype in at least one near-duplicate pair."""
    flags = np.zeros(num_prototypes, dtype=bool)
    for pair in pairs:
        flags[[pair.a, pair.b]] = True
    return flags

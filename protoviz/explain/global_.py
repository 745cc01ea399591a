"""Global characteristic importance per prototype over a dataset, streamed in constant memory.

G_{j,m} = sum_x w_j(x) Delta_{j,m}(x) / sum_x w_j(x), with w_j(x) = s_j(x) (Nauta et al.): a mean of the
local Delta weighted by how similar each image is to the prototype, over every image of the split.
Families whose similarity can be negative (cosine) would make that weight meaningless, so the weight is
max(s_j(x), 0); for ProtoPNet's log similarity (always > 0) this is exactly the reference formula.
Running sums are kept in float64, so memory does not grow with the dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from protoviz.device import run_with_oom_fallback
from protoviz.errors import ConfigError, DatasetError
from protoviz.explain.characteristics import describe_run
from protoviz.explain.local import LocalExplanation, PreparedBatch, explain_units, prepare_cpu, to_device
from protoviz.explain.params import ExplainConfig
from protoviz.models.base import PrototypeModel

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done_images, total_images)`` after every batch."""


class ImageSource(Protocol):
    """What a global run reads: ``len()`` and items with an ``.image`` (e.g. protoviz's ImageDataset)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


@dataclass
class GlobalAccumulator:
    """Running float64 sums over images for P prototypes and M modifications."""

    characteristics: tuple[str, ...]
    num_prototypes: int
    weighted: np.ndarray = field(init=False)  # (P, M) sum of w * Delta
    weights: np.ndarray = field(init=False)  # (P,) sum of w
    deltas: np.ndarray = field(init=False)  # (P, M) sum of Delta
    abs_deltas: np.ndarray = field(init=False)  # (P, M) sum of |Delta|
    similarities: np.ndarray = field(init=False)  # (P,) sum of s
    count: int = 0

    def __post_init__(self) -> None:
        shape = (self.num_prototypes, len(self.characteristics))
        self.weighted, self.deltas, self.abs_deltas = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        self.weights, self.similarities = np.zeros(self.num_prototypes), np.zeros(self.num_prototypes)

    def update(self, local: LocalExplanation) -> None:
        """Add a batch's local explanation (it must cover all prototypes)."""
        if local.similarities.shape[1] != self.num_prototypes:
            raise ConfigError(f"a global run needs all {self.num_prototypes} prototypes, "
                              f"got a batch with {local.similarities.shape[1]}")
        s = local.similarities.double()  # (B, P)
        delta = local.deltas.double()  # (B, M, P)
        w = s.clamp_min(0.0)
        self.weighted += torch.einsum("bp,bmp->pm", w, delta).numpy()
        self.weights += w.sum(0).numpy()
        self.deltas += delta.sum(0).t().numpy()
        self.abs_deltas += delta.abs().sum(0).t().numpy()
        self.similarities += s.sum(0).numpy()
        self.count += int(s.shape[0])

    def result(self, config: ExplainConfig, provenance: dict[str, Any] | None = None) -> GlobalExplanation:
        """The global explanation of everything added so far."""
        if self.count == 0:
            raise DatasetError("a global explanation needs at least one image; the dataset gave none")
        with np.errstate(invalid="ignore", divide="ignore"):
            importance = np.where(self.weights[:, None] > 0, self.weighted / self.weights[:, None], np.nan)
        return GlobalExplanation(
            characteristics=self.characteristics, importance=importance, mean_delta=self.deltas / self.count,
            mean_abs_delta=self.abs_deltas / self.count, mean_similarity=self.similarities / self.count,
            weight_sum=self.weights.copy(), num_images=self.count, config=config, provenance=dict(provenance or {}))


@dataclass(frozen=True)
class GlobalExplanation:
    """Per-prototype global importance.

    importance: (P, M) G_{j,m}, NaN for a prototype whose weights summed to 0. mean_delta and
    mean_abs_delta: (P, M) unweighted means of Delta and |Delta|. mean_similarity, weight_sum: (P,).
    """

    characteristics: tuple[str, ...]
    importance: np.ndarray
    mean_delta: np.ndarray
    mean_abs_delta: np.ndarray
    mean_similarity: np.ndarray
    weight_sum: np.ndarray
    num_images: int
    config: ExplainConfig
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def num_prototypes(self) -> int:
        return int(self.importance.shape[0])

    def vector(self, prototype: int) -> dict[str, float]:
        """Characteristic -> G for one prototype."""
        return {name: float(v) for name, v in zip(self.characteristics, self.importance[prototype])}

    def ranking(self, prototype: int, include_identity: bool = False) -> list[str]:
        """The prototype's characteristics from most to least important."""
        pairs = [(n, v) for n, v in self.vector(prototype).items() if include_identity or n != "identity"]
        return [n for n, _ in sorted(pairs, key=lambda p: -np.nan_to_num(p[1], nan=-np.inf))]


def _images_of(source: ImageSource | Sequence[Image.Image], indices: Sequence[int]) -> list[Image.Image]:
    images = []
    for i in indices:
        item = source[i]
        images.append(item if isinstance(item, Image.Image) else item.image)
    return images


def explain_dataset(model: PrototypeModel, source: ImageSource | Sequence[Image.Image],
                    config: ExplainConfig | None = None, batch_size: int = 16, limit: int | None = None,
                    progress: ProgressCallback | None = None,
                    provenance: dict[str, Any] | None = None) -> GlobalExplanation:
    """Global explanation of every prototype over ``source`` (every image, or the first ``limit``).

    Batches of ``batch_size`` images are decoded (and, in reference mode, modified with PIL / OpenCV)
    on a worker thread while the previous batch runs on the device; each image goes through one
    forward together with its M modified versions. The batch size halves on CUDA out-of-memory.
    Whole-image modifications only.
    """
    config = config or ExplainConfig()
    if config.region != "whole":
        raise ConfigError("a global run modifies whole images; region-only perturbation is for local explanations")
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    total = len(source) if limit is None else min(len(source), max(0, int(limit)))
    provenance = {**(provenance or {}), "modifications": describe_run(config, model.device)}
    chunks = [list(range(s, min(total, s + batch_size))) for s in range(0, total, batch_size)]
    accumulator = GlobalAccumulator(config.characteristics, model.num_prototypes)
    was_training = model.training
    model.eval()

    def load(indices: list[int]) -> PreparedBatch:
        return prepare_cpu(model, _images_of(source, indices), config)

    try:
        done, size = 0, batch_size
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending: Future[PreparedBatch] | None = pool.submit(load, chunks[0]) if chunks else None
            for following in [*chunks[1:], None]:
                prepared = pending.result() if pending is not None else None
                pending = pool.submit(load, following) if following is not None else None
                if prepared is None:
                    break
                size = _consume(model, prepared, config, accumulator, size)
                done += len(prepared)
                if progress is not None:
                    progress(done, total)
    finally:
        model.train(was_training)
    return accumulator.result(config, provenance)


def _consume(model: PrototypeModel, prepared: PreparedBatch, config: ExplainConfig, accumulator: GlobalAccumulator,
             size: int) -> int:
    """Run a prepared batch in chunks of ``size`` (halved on out-of-memory); returns the size that fitted."""
    position = 0
    while position < len(prepared):
        def step(attempt: int, start: int = position) -> tuple[LocalExplanation, int]:
            unit, modified = to_device(model, prepared.slice(start, start + attempt), config)
            return explain_units(model, unit, modified, config), attempt
        local, size = run_with_oom_fallback(step, size)
        accumulator.update(local)
        position += int(local.similarities.shape[0])
    return size

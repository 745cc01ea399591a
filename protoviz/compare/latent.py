"""Latent-space view: prototypes and their nearest patches projected to 2-D.

The projection is PCA fitted on the prototypes and their top-k patch latents together (SVD of the
centred points, in float64). Signs are fixed so each component's largest loading is positive, which
makes the view deterministic across runs and devices. Cosine-similarity models are projected on the
unit sphere (vectors normalised first), since only directions matter to them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from protoviz.compare.topk import TopKPatches
from protoviz.errors import ConfigError
from protoviz.models.base import PrototypeModel


@dataclass(frozen=True)
class Projection:
    """A fitted linear projection: mean (D,), components (2, D), explained variance ratios (2,)."""

    mean: Tensor
    components: Tensor
    explained: Tensor

    def transform(self, points: Tensor) -> Tensor:
        """Points (N, D) -> coordinates (N, 2)."""
        return (points.double() - self.mean) @ self.components.t()


def fit_pca(points: Tensor, dims: int = 2) -> Projection:
    """PCA of points (N, D) keeping ``dims`` components (N >= 2)."""
    if points.dim() != 2 or points.shape[0] < 2:
        raise ConfigError(f"PCA needs at least 2 points as (N, D), got {tuple(points.shape)}")
    data = points.detach().double().cpu()
    mean = data.mean(dim=0)
    _, singular, vh = torch.linalg.svd(data - mean, full_matrices=False)
    keep = min(dims, vh.shape[0])
    components = vh[:keep]
    signs = torch.sign(components.gather(1, components.abs().argmax(dim=1, keepdim=True)))
    components = components * torch.where(signs == 0, torch.ones_like(signs), signs)
    variance = singular ** 2
    explained = variance[:keep] / variance.sum().clamp_min(1e-300)
    if keep < dims:  # fewer independent directions than asked: pad with zero axes
        components = torch.cat([components, components.new_zeros(dims - keep, components.shape[1])])
        explained = torch.cat([explained, explained.new_zeros(dims - keep)])
    return Projection(mean=mean, components=components, explained=explained)


@dataclass(frozen=True)
class LatentView:
    """Everything the latent-space scatter needs.

    prototype_xy: (P, 2); prototype_class: (P,) class index or -1 when a prototype serves no single class;
    patch_xy: (P, k, 2); patch_filled: (P, k) bool; explained: (2,) variance ratio of each axis.
    """

    prototype_xy: np.ndarray
    prototype_class: np.ndarray
    patch_xy: np.ndarray
    patch_filled: np.ndarray
    explained: np.ndarray
    normalised: bool


def prototype_classes(model: PrototypeModel) -> np.ndarray:
    """(P,) the class each prototype belongs to (argmax of its identity row), -1 for none."""
    identity = model.prototype_class_identity.detach().cpu()
    classes = identity.argmax(dim=1)
    return torch.where(identity.sum(dim=1) > 0, classes, torch.full_like(classes, -1)).numpy()


def latent_view(model: PrototypeModel, topk: TopKPatches) -> LatentView:
    """Project the model's prototype vectors (P, D) and their top-k patch latents (P, k, D) to 2-D."""
    if topk.latents is None:
        raise ConfigError("the top-k patches were computed without latents (keep_latents=False)")
    prototypes = model.prototype_embeddings.detach().double().cpu()
    latents = topk.latents.double()
    num, k, dim = latents.shape
    if prototypes.shape != (num, dim):
        raise ConfigError(f"prototype vectors {tuple(prototypes.shape)} do not match the top-k latents "
                          f"({num}, {dim}): were the top-k patches computed with this model?")
    normalised = model.similarity_kind == "cosine"
    if normalised:
        prototypes, latents = F.normalize(prototypes, dim=1), F.normalize(latents, dim=2)
    filled = topk.filled()
    projection = fit_pca(torch.cat([prototypes, latents[filled]]))
    return LatentView(
        prototype_xy=projection.transform(prototypes).numpy(),
        prototype_class=prototype_classes(model),
        patch_xy=projection.transform(latents.reshape(num * k, dim)).reshape(num, k, 2).numpy(),
        patch_filled=filled.numpy(),
        explained=projection.explained.numpy(),
        normalised=normalised,
    )

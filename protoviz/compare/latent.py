"""Latent-space view: prototypes and their nearest patches projected to 2-D.

Three projections, all fitted on the prototypes and their top-k patch latents together:
- ``pca`` (default): SVD of the centred points in float64; signs fixed so each component's largest
  loading is positive, which makes the view deterministic across runs and devices;
- ``tsne``: scikit-learn's ``TSNE(n_components=2, random_state=seed)`` (perplexity capped below the
  number of points), as CaBRNet's ``show_latent_space``;
- ``pacmap``: ``PaCMAP(n_components=2, MN_ratio=0.5, FP_ratio=2.0, random_state=seed)``, CaBRNet's
  settings (neighbours capped for small sets).
t-SNE and PaCMAP keep neighbourhoods rather than distances: their axes have no units and no explained
variance (``explained`` is NaN). All three are deterministic for a given seed. Cosine-similarity models
are projected on the unit sphere (vectors normalised first), since only directions matter to them.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from protoviz.compare.topk import TopKPatches
from protoviz.errors import ConfigError, WorkspaceError
from protoviz.models.base import PrototypeModel
from protoviz.payload import Payload, array_from_bytes, array_to_bytes, result_type

LATENT_RESULT = "compare.latent"


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


@result_type(LATENT_RESULT)
@dataclass(frozen=True)
class LatentView:
    """Everything the latent-space scatter needs.

    prototype_xy: (P, 2); prototype_class: (P,) class index or -1 when a prototype serves no single class;
    patch_xy: (P, k, 2); patch_filled: (P, k) bool; explained: (2,) variance ratio of each axis (NaN for
    t-SNE and PaCMAP); method: the projection (one of PROJECTIONS); seed: its random seed.
    """

    prototype_xy: np.ndarray
    prototype_class: np.ndarray
    patch_xy: np.ndarray
    patch_filled: np.ndarray
    explained: np.ndarray
    normalised: bool
    method: str = "pca"
    seed: int = 0
    settings: dict[str, float] = field(default_factory=dict)

    @property
    def axis_titles(self) -> tuple[str, str]:
        """Axis titles for a figure: "PC1 (41.2% var.)" for PCA, "t-SNE 1" / "PaCMAP 1" otherwise."""
        if self.method == "pca":
            return (f"PC1 ({100 * float(self.explained[0]):.1f}% var.)", f"PC2 ({100 * float(self.explained[1]):.1f}% var.)")
        label = PROJECTION_LABELS[self.method]
        return f"{label} 1", f"{label} 2"

    def to_payload(self) -> Payload:
        """Coordinates as blobs, the rest as JSON (a t-SNE of a CUB-scale model is worth keeping)."""
        blobs = {name: array_to_bytes(getattr(self, name)) for name in _ARRAYS}
        return Payload(data={"normalised": self.normalised, "method": self.method, "seed": self.seed,
                             "settings": dict(self.settings)}, blobs=blobs)

    @classmethod
    def from_payload(cls, payload: Payload) -> LatentView:
        try:
            arrays = {name: array_from_bytes(payload.blobs[name]) for name in _ARRAYS}
            data = payload.data
            return cls(**arrays, normalised=bool(data["normalised"]), method=str(data["method"]),
                       seed=int(data["seed"]), settings=dict(data["settings"]))
        except KeyError as error:
            raise WorkspaceError(f"a stored latent view lacks {error}") from error


_ARRAYS = ("prototype_xy", "prototype_class", "patch_xy", "patch_filled", "explained")


PROJECTIONS: tuple[str, ...] = ("pca", "tsne", "pacmap")
PROJECTION_LABELS: dict[str, str] = {"pca": "PCA", "tsne": "t-SNE", "pacmap": "PaCMAP"}


def fit_neighbourhood(points: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, dict[str, float]]:
    """t-SNE or PaCMAP of points (N, D) float64 -> (N, 2) coordinates and the settings used."""
    count = points.shape[0]
    if count < 4:
        raise ConfigError(f"{PROJECTION_LABELS[method]} needs at least 4 points, got {count}")
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (count - 1) / 3.0))
        coords = TSNE(n_components=2, random_state=seed, perplexity=perplexity, init="pca").fit_transform(points)
        return np.asarray(coords, dtype=np.float64), {"perplexity": perplexity}
    from pacmap import PaCMAP

    neighbours = int(min(10, count - 2))
    reducer = PaCMAP(n_components=2, n_neighbors=neighbours, MN_ratio=0.5, FP_ratio=2.0, random_state=seed)
    with contextlib.redirect_stdout(io.StringIO()):  # PaCMAP prints a warning whenever a seed is set
        coords = reducer.fit_transform(points.astype(np.float32), init="pca")
    return np.asarray(coords, dtype=np.float64), {"n_neighbors": neighbours, "MN_ratio": 0.5, "FP_ratio": 2.0}


def prototype_classes(model: PrototypeModel) -> np.ndarray:
    """(P,) the class each prototype belongs to (argmax of its identity row), -1 for none."""
    identity = model.prototype_class_identity.detach().cpu()
    classes = identity.argmax(dim=1)
    return torch.where(identity.sum(dim=1) > 0, classes, torch.full_like(classes, -1)).numpy()


def latent_view(model: PrototypeModel, topk: TopKPatches, method: str = "pca", seed: int = 0) -> LatentView:
    """Project the model's prototype vectors (P, D) and their top-k patch latents (P, k, D) to 2-D with
    ``method`` (one of PROJECTIONS; see the module doc)."""
    if method not in PROJECTIONS:
        raise ConfigError(f"unknown latent projection {method!r}; choose one of {', '.join(PROJECTIONS)}")
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
    if method != "pca":
        points = torch.cat([prototypes, latents[filled]]).numpy()
        coords, settings = fit_neighbourhood(points, method, seed)
        patch_xy = np.full((num, k, 2), np.nan)
        patch_xy[filled.numpy()] = coords[num:]
        return LatentView(prototype_xy=coords[:num], prototype_class=prototype_classes(model), patch_xy=patch_xy,
                          patch_filled=filled.numpy(), explained=np.full(2, np.nan), normalised=normalised,
                          method=method, seed=seed, settings=settings)
    projection = fit_pca(torch.cat([prototypes, latents[filled]]))
    return LatentView(
        prototype_xy=projection.transform(prototypes).numpy(),
        prototype_class=prototype_classes(model),
        patch_xy=projection.transform(latents.reshape(num * k, dim)).reshape(num, k, 2).numpy(),
        patch_filled=filled.numpy(),
        explained=projection.explained.numpy(),
        normalised=normalised,
        method="pca",
        seed=seed,
    )

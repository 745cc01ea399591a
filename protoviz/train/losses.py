"""ProtoPNet's training objective and its support/trivial (ST-ProtoPNet-style) variant.

Distances: squared L2 for ``log`` models, ``1 - cos`` for ``cosine`` models, each min-pooled over the
latent map, so ``min_distances`` is (B, P).

- cluster cost (ProtoPNet): mean over images of the smallest distance from the image to a prototype of
  its own class -> pulls each image towards some prototype of its class.
- separation cost (ProtoPNet): mean over images of the smallest distance to a prototype of any other
  class; it is *subtracted*, pushing other-class prototypes away.
- last-layer L1 (ProtoPNet): sum of |w| over the off-class connections of the last layer.

For a model with ``prototype_sets=("support", "trivial")`` (ST-ProtoPNet, Wang et al. 2023) this module
implements a simplification of that paper's objective:
- trivial set: ProtoPNet's cluster and separation costs (prototypes far from the decision boundary);
- support set: the cluster cost plus a *closeness* term equal to the support set's separation cost
  *added* (weight ``support_closeness``), i.e. support prototypes of other classes are pulled towards
  each image's features, which places the support prototypes near the class boundary.
The paper's orthogonality term and its exact closeness/discrimination losses (defined between the
prototypes themselves) are not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from protoviz.models.protopnet import ProtoPNet, cosine_similarity, distance_to_log_similarity, squared_l2_distances


@dataclass(frozen=True)
class LossTerms:
    """The parts of one batch's loss (scalars) and the logits (B, C) they came from."""

    total: Tensor
    cross_entropy: Tensor
    cluster: Tensor
    separation: Tensor
    l1: Tensor
    logits: Tensor


def set_distances(model: ProtoPNet, latents: dict[str, Tensor]) -> dict[str, Tensor]:
    """Per prototype set, distances (B, P_set, h, w): squared L2 (``log``, ``linear``) or 1 - cos (``cosine``)."""
    out = {}
    for name, latent in latents.items():
        prototypes = model._set_parts(name)[1].flatten(1)
        if model.config.similarity == "cosine":
            out[name] = 1 - cosine_similarity(latent, prototypes)
        else:
            out[name] = squared_l2_distances(latent, prototypes)
    return out


def similarity_from_distances(model: ProtoPNet, distances: Tensor) -> Tensor:
    """Invert :func:`set_distances`: distances (B, P, h, w) -> the model's similarities (B, P, h, w)."""
    if model.config.similarity == "cosine":
        return 1 - distances
    if model.config.similarity == "linear":
        return -distances
    return distance_to_log_similarity(distances)


def cluster_separation(min_distances: Tensor, identity: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """ProtoPNet's cluster and separation costs.

    min_distances: (B, P) smallest distance of each prototype to each image's latent patches;
    identity: (P, C) prototype-class identity; labels: (B,). Returns (cluster, separation), scalars.
    """
    own = identity.t()[labels].bool()  # (B, P)
    inf = torch.finfo(min_distances.dtype).max
    cluster = min_distances.masked_fill(~own, inf).amin(dim=1).mean()
    separation = min_distances.masked_fill(own, inf).amin(dim=1).mean()
    return cluster, separation


def off_class_l1(model: ProtoPNet) -> Tensor:
    """Sum of |w| of the last-layer weights that connect a prototype to a class it does not belong to."""
    return ((1 - model.prototype_class_identity.t()) * model.class_weights).abs().sum()


def protopnet_loss(model: ProtoPNet, images: Tensor, labels: Tensor, cluster_coef: float, separation_coef: float,
                   l1_coef: float, closeness_coef: float = 0.0, ce_coef: float = 1.0) -> LossTerms:
    """The full objective for normalised ``images`` (B, 3, H, W) and ``labels`` (B,).

    total = ce * CE + cluster * sum_sets(cluster_s) - separation * sep(non-support sets)
            + closeness * sep(support set) + l1 * L1(off-class last-layer weights).
    """
    latents = model.set_latents(images)
    distances = set_distances(model, latents)
    maps = torch.cat([similarity_from_distances(model, d) for d in distances.values()], dim=1)
    pooled = maps.flatten(2).amax(dim=2)
    logits = model.logits_from_similarities(maps, pooled)
    ce = F.cross_entropy(logits, labels)
    cluster = ce.new_zeros(())
    separation = ce.new_zeros(())
    closeness = ce.new_zeros(())
    for name, dist in distances.items():
        identity = model._set_parts(name)[3]
        c, s = cluster_separation(dist.flatten(2).amin(dim=2), identity, labels)
        cluster = cluster + c
        if name == "support":
            closeness = closeness + s
        else:
            separation = separation + s
    l1 = off_class_l1(model)
    total = (ce_coef * ce + cluster_coef * cluster - separation_coef * separation
             + closeness_coef * closeness + l1_coef * l1)
    return LossTerms(total, ce, cluster, separation, l1, logits)

"""How each family's original code picks a prototype's source patch: its push criterion, one rule per family.

A :class:`PushRule` says, for one family, what the original push (or projection) minimises, which
training images each prototype may be projected onto, and which map it draws its high-activation box
from:

=============  =================================  ===============================  =======================
family         distance (lower = nearer)          eligible images                  box drawn on
=============  =================================  ===============================  =======================
protopnet      squared L2 (``log``/``linear``),   own class (argmax of the         the similarity map
               1 - cos (protoviz ``cosine``)      prototype's class identity)
tesnet         -projection  z . p/|p|             own class                        projection
stprotopnet    full: -cos(z, p); cropped:         own class, each set on its own   cos (no ReLU) / projection
               -projection (``push_forward_*``)
protopool      squared L2                         classes whose slots pick it      log similarity / -d
                                                  (argmax of each slot)
prototree      L2 (``forward_partial``)           classes of every leaf under the  exp(-d)
                                                  node (both subtrees)
pipnet         -softmax score (top patch; PIP-Net every image                      softmax map
               has no push)
=============  =================================  ===============================  =======================

Ties go to the earliest image, then the first location in row-major order (numpy's ``argmin`` and the
originals' strict ``<`` across batches); PIP-Net's ``torch.max`` over rows then columns takes the first
column, then the first row (``column_major``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from protoviz.compare.scan import PassStep
from protoviz.errors import ModelError
from protoviz.models.base import PrototypeModel
from protoviz.models.tesnet import projection_similarity


@dataclass(frozen=True)
class PushRule:
    """One family's projection rule.

    step_distances: a pass step -> (B, P, h, w) distances, lower = nearer, as the original compares them.
    distance_maps: normalised images (B, 3, H, W) -> the same distances, computed directly.
    activation_maps: normalised images -> (B, P, h, w) maps the original draws boxes from.
    eligible: the model -> (P, C) bool, True where prototype p may be projected onto class c's images.
    """

    family: str
    distance_kind: str
    needs_latent: bool
    step_distances: Callable[[Any, PassStep], Tensor]
    distance_maps: Callable[[Any, Tensor], Tensor]
    activation_maps: Callable[[Any, Tensor], Tensor]
    eligible: Callable[[Any], Tensor]
    column_major: bool = False


RULES: dict[str, PushRule] = {}


def register_rule(rule: PushRule) -> PushRule:
    """Add a family's rule; a family registered twice is an error."""
    if rule.family in RULES:
        raise ModelError(f"a push rule for {rule.family!r} is already registered")
    RULES[rule.family] = rule
    return rule


def push_rule(model: PrototypeModel) -> PushRule:
    """The rule of ``model``'s family, or ModelError saying why its sources cannot be found."""
    if model.family not in RULES:
        raise ModelError(f"prototype sources cannot be projected for the {model.family} family: "
                         + _UNSUPPORTED.get(model.family, f"supported: {', '.join(sorted(RULES))}"))
    return RULES[model.family]


_UNSUPPORTED = {
    "deformable": "its 2x2 prototypes have parts that move by learned offsets, and its original push (CUDA-only) "
                  "projects each part separately, which protoviz does not reproduce",
}


def own_class(model: PrototypeModel) -> Tensor:
    """(P, C) one-hot of each prototype's class (argmax of its identity row, as ProtoPNet's push)."""
    identity = model.prototype_class_identity
    return F.one_hot(identity.argmax(dim=1), identity.shape[1]).bool()


# ----- ProtoPNet (native and research) ----------------------------------------------------------
def _protopnet_sets(model: Any, latent: Tensor) -> dict[str, Tensor]:
    dim = model.config.prototype_dim
    return {name: latent[:, i * dim:(i + 1) * dim] for i, name in enumerate(model.config.prototype_sets)}


def _protopnet_distances(model: Any, latents: dict[str, Tensor]) -> Tensor:
    from protoviz.train.losses import set_distances

    distances = set_distances(model, latents)
    return torch.cat([distances[name] for name in model.config.prototype_sets], dim=1)


register_rule(PushRule(
    family="protopnet", distance_kind="squared_l2", needs_latent=True,
    step_distances=lambda m, step: _protopnet_distances(m, _protopnet_sets(m, _latent(step))),
    distance_maps=lambda m, x: _protopnet_distances(m, m.set_latents(x)),
    activation_maps=lambda m, x: m.similarity_maps(x), eligible=own_class))


# ----- TesNet ---------------------------------------------------------------------------------
register_rule(PushRule(
    family="tesnet", distance_kind="neg_projection", needs_latent=False,
    step_distances=lambda m, step: -step.maps, distance_maps=lambda m, x: -m.similarity_maps(x),
    activation_maps=lambda m, x: m.similarity_maps(x), eligible=own_class))


# ----- ST-ProtoPNet ----------------------------------------------------------------------------
def _st_scores(model: Any, latents: dict[str, Tensor]) -> Tensor:
    """(B, 2P, h, w): cos(z, p) (full, no ReLU) or the projection z . p/|p| (cropped), support then trivial."""
    parts = []
    for name in ("support", "trivial"):
        latent, prototypes = latents[name], getattr(model, f"prototype_vectors_{name}").flatten(1)
        if model.config.variant == "full":
            parts.append(F.conv2d(F.normalize(latent, dim=1), F.normalize(prototypes, dim=1)[:, :, None, None]))
        else:
            parts.append(projection_similarity(latent, prototypes))
    return torch.cat(parts, dim=1)


def _st_split(model: Any, latent: Tensor) -> dict[str, Tensor]:
    dim = model.config.prototype_dim
    return {"support": latent[:, :dim], "trivial": latent[:, dim:2 * dim]}


register_rule(PushRule(
    family="stprotopnet", distance_kind="neg_cosine_or_projection", needs_latent=True,
    step_distances=lambda m, step: -_st_scores(m, _st_split(m, _latent(step))),
    distance_maps=lambda m, x: -_st_scores(m, m.set_latents(x)),
    activation_maps=lambda m, x: _st_scores(m, m.set_latents(x)), eligible=own_class))


# ----- ProtoPool -------------------------------------------------------------------------------
def _protopool_distances(model: Any, latent: Tensor) -> Tensor:
    from protoviz.models.protopnet import squared_l2_distances

    return squared_l2_distances(latent, model.prototype_vectors.flatten(1))


def _protopool_activation(model: Any, x: Tensor) -> Tensor:
    """What ProtoPool's push draws boxes from: log((d + 1) / (d + 1e-4)), or max_dist - d for ``linear``
    (boxes are unchanged by the constant: -d)."""
    from protoviz.models.protopnet import distance_to_log_similarity

    distances = model.distance_maps(x)
    return -distances if model.config.activation == "linear" else distance_to_log_similarity(distances)


register_rule(PushRule(
    family="protopool", distance_kind="squared_l2", needs_latent=True,
    step_distances=lambda m, step: _protopool_distances(m, _latent(step)),
    distance_maps=lambda m, x: m.distance_maps(x), activation_maps=_protopool_activation,
    eligible=lambda m: m.prototype_class_identity > 0))


# ----- ProtoTree -------------------------------------------------------------------------------
def subtree_classes(model: Any) -> Tensor:
    """(P, C) True where class c is the argmax of a leaf anywhere under prototype p's node (ProtoTree's
    ``project_with_class_constraints``: ``branch.leaves``, both subtrees)."""
    tree = model.config.tree
    winners = model.leaf_distributions().argmax(dim=1).tolist()
    allowed = torch.zeros(model.prototype_vectors.shape[0], len(model.class_names), dtype=torch.bool)
    for node in tree:
        if "prototype" not in node:
            continue
        stack = [node["left"], node["right"]]
        while stack:
            child = tree[stack.pop()]
            if "leaf" in child:
                allowed[node["prototype"], winners[child["leaf"]]] = True
            else:
                stack += [child["left"], child["right"]]
    return allowed.to(model.prototype_vectors.device)


register_rule(PushRule(
    family="prototree", distance_kind="l2", needs_latent=False,
    step_distances=lambda m, step: -step.maps,  # maps = exp(-d): same order as d, no second backbone pass
    distance_maps=lambda m, x: m.distance_maps(x), activation_maps=lambda m, x: m.similarity_maps(x),
    eligible=subtree_classes))


# ----- PIP-Net ---------------------------------------------------------------------------------
register_rule(PushRule(
    family="pipnet", distance_kind="neg_softmax", needs_latent=False,
    step_distances=lambda m, step: -step.maps, distance_maps=lambda m, x: -m.similarity_maps(x),
    activation_maps=lambda m, x: m.similarity_maps(x),
    eligible=lambda m: torch.ones(m.num_prototypes, m.num_classes, dtype=torch.bool, device=m.device),
    column_major=True))


def _latent(step: PassStep) -> Tensor:
    if step.latent is None:
        raise ModelError("this family's latent map differs from its similarity maps; cannot project")
    return step.latent

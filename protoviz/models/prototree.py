"""ProtoTree (Nauta et al. 2021): a soft binary decision tree whose branches are prototypes.

latent z = Sigmoid(conv1x1 without bias (backbone)); the distance of prototype p (D, h1, w1) to each
patch is the true L2 distance sqrt(| |z|^2 + |p|^2 - 2 z.p | + 1e-14); similarity maps are exp(-d)
(B, P, h, w). At a branch the probability of going right is its prototype's max similarity s_p; a
leaf's path probability is the product over its ancestors of s_p (right) or 1 - s_p (left), and the
output is sum over leaves of path probability x the leaf's class distribution
(softmax(dist_params), or dist_params / sum with Kontschieder normalisation): class *probabilities*,
so ``output_kind = "probs"`` and there is no linear head. ``class_weights`` / identity mark, for each
prototype, the classes that are the argmax of a leaf in its right ("present") subtree.

The tree is part of the config: ``tree`` lists nodes (position 0 = root) as ``{"index", "prototype",
"left", "right"}`` for branches (children are list positions) and ``{"index", "leaf"}`` for leaves
(row of ``leaf_params`` (L, C)). ``index`` is the node's number in ProtoTree itself (``Node._index``:
preorder numbers of the unpruned tree, kept by pruning, so a pruned tree's numbers have gaps);
:meth:`decision_tree` and :meth:`decision_path` name nodes by it, positions are only list indices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from protoviz.errors import ConfigError, ModelError
from protoviz.models.backbones import build_backbone
from protoviz.models.base import InputSpec, PrototypeModel
from protoviz.models.registry import register_family


@dataclass(frozen=True)
class TreeNode:
    """One node of the decision tree. Branches have a prototype and children; leaves a distribution (C,)."""

    position: int
    index: int
    depth: int
    prototype: int | None = None
    left: int | None = None
    right: int | None = None
    distribution: tuple[float, ...] | None = None

    @property
    def is_leaf(self) -> bool:
        return self.prototype is None


@dataclass(frozen=True)
class PathStep:
    """One branch on an image's greedy path: its node number, similarity and whether the path went right."""

    position: int
    node: int
    prototype: int
    similarity: float
    went_right: bool


@dataclass(frozen=True)
class DecisionPath:
    """The greedy root-to-leaf path of one image (right when the similarity > 0.5, as ProtoTree's greedy).

    ``leaf_node`` is the leaf's number in ProtoTree (its ``out_leaf_ix`` with ``sampling_strategy='greedy'``).
    """

    steps: tuple[PathStep, ...]
    leaf_position: int
    leaf_node: int
    leaf_distribution: tuple[float, ...]
    predicted_class: int

    def as_rows(self) -> list[dict[str, object]]:
        """One row per branch on the path, for tables and CSV; ``node`` is ProtoTree's node number."""
        return [{"depth": depth, "node": step.node, "prototype": step.prototype,
                 "similarity": round(step.similarity, 4),
                 "decision": "present (right)" if step.went_right else "absent (left)"}
                for depth, step in enumerate(self.steps)]

    def as_record(self) -> dict[str, object]:
        """JSON-able: the steps, the leaf's node number, its class distribution and the predicted class."""
        return {"steps": [{**row, "similarity": step.similarity} for row, step in zip(self.as_rows(), self.steps)],
                "leaf_node": self.leaf_node, "leaf_distribution": list(self.leaf_distribution),
                "predicted_class": self.predicted_class}


@dataclass(frozen=True)
class ProtoTreeConfig:
    """Everything needed to rebuild a ProtoTree (the tree topology included)."""

    class_names: tuple[str, ...]
    tree: tuple[dict[str, int], ...]
    backbone: str = "resnet50"
    prototype_dim: int = 256
    prototype_size: tuple[int, int] = (1, 1)
    num_prototypes: int = 0
    kontschieder_normalization: bool = False
    input: InputSpec = field(default_factory=InputSpec)

    def __post_init__(self) -> None:
        if not self.class_names or not self.tree or self.prototype_dim < 1:
            raise ConfigError("ProtoTree needs at least one class, a non-empty tree and prototype_dim >= 1")
        for node in self.tree:
            if not ({"index", "leaf"} == set(node) or {"index", "prototype", "left", "right"} == set(node)):
                raise ConfigError(f"malformed ProtoTree node {node}: expected index+leaf or index+prototype+left+right")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "class_names": list(self.class_names), "tree": [dict(n) for n in self.tree],
                "prototype_size": list(self.prototype_size), "input": self.input.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProtoTreeConfig:
        return cls(**{**data, "class_names": tuple(data["class_names"]),
                      "tree": tuple({k: int(v) for k, v in n.items()} for n in data["tree"]),
                      "prototype_size": tuple(data["prototype_size"]), "input": InputSpec.from_dict(data["input"])})

    @property
    def num_leaves(self) -> int:
        return sum("leaf" in n for n in self.tree)


def leaf_paths(tree: tuple[dict[str, int], ...]) -> list[tuple[int, list[tuple[int, bool]]]]:
    """For each leaf (in leaf-row order): its row and the [(prototype, went_right)] from the root."""
    found: list[tuple[int, list[tuple[int, bool]]]] = []
    stack: list[tuple[int, list[tuple[int, bool]]]] = [(0, [])]
    while stack:
        position, path = stack.pop()
        node = tree[position]
        if "leaf" in node:
            found.append((node["leaf"], path))
        else:
            stack.append((node["right"], path + [(node["prototype"], True)]))
            stack.append((node["left"], path + [(node["prototype"], False)]))
    return sorted(found)


@register_family
class ProtoTree(PrototypeModel):
    """ProtoTree behind the common interface (probabilities, no linear head)."""

    family = "prototree"
    path_index: Tensor  # (L, depth) prototype row of each step of each leaf's path
    path_right: Tensor  # (L, depth) bool: the path goes right there
    path_valid: Tensor  # (L, depth) bool: the step exists (leaves sit at different depths)
    config_class = ProtoTreeConfig
    output_kind = "probs"

    def __init__(self, config: ProtoTreeConfig):
        super().__init__(config.input, config.class_names, config.backbone, "exp_neg_l2")
        self.config = config
        backbone = build_backbone(config.backbone)
        self.features = backbone.module
        self.add_on = nn.Sequential(nn.Conv2d(backbone.out_channels, config.prototype_dim, 1, bias=False), nn.Sigmoid())
        P = config.num_prototypes or sum("prototype" in n for n in config.tree)
        self.prototype_vectors = nn.Parameter(torch.rand(P, config.prototype_dim, *config.prototype_size))
        self.leaf_params = nn.Parameter(torch.randn(config.num_leaves, len(config.class_names)))
        paths = leaf_paths(config.tree)
        depth = max(1, max(len(p) for _, p in paths))
        index = torch.zeros(len(paths), depth, dtype=torch.long)
        direction = torch.zeros(len(paths), depth, dtype=torch.bool)
        valid = torch.zeros(len(paths), depth, dtype=torch.bool)
        for row, path in paths:
            for k, (prototype, right) in enumerate(path):
                index[row, k], direction[row, k], valid[row, k] = prototype, right, True
        self.register_buffer("path_index", index, persistent=False)
        self.register_buffer("path_right", direction, persistent=False)
        self.register_buffer("path_valid", valid, persistent=False)

    def latent(self, x: Tensor) -> Tensor:
        return self.add_on(self.features(x))

    def distance_maps(self, x: Tensor) -> Tensor:
        """True L2 distances (B, P, h', w') of latent patches to prototypes."""
        z = self.latent(x)
        p = self.prototype_vectors
        z2 = F.conv2d(z * z, torch.ones_like(p[:1]))
        zp = F.conv2d(z, p)
        p2 = (p * p).flatten(1).sum(dim=1).view(1, -1, 1, 1)
        return torch.sqrt(torch.abs(z2 + p2 - 2 * zp) + 1e-14)

    def similarity_maps(self, x: Tensor) -> Tensor:
        return torch.exp(-self.distance_maps(x))

    def leaf_distributions(self) -> Tensor:
        """(L, C) class distribution of each leaf."""
        if self.config.kontschieder_normalization:
            return self.leaf_params / self.leaf_params.sum(dim=1, keepdim=True)
        return torch.softmax(self.leaf_params, dim=1)

    def path_probabilities(self, pooled: Tensor) -> Tensor:
        """(B, L) probability of reaching each leaf from the prototypes' max similarities (B, P)."""
        s = pooled[:, self.path_index]
        factors = torch.where(self.path_right, s, 1 - s)
        return torch.where(self.path_valid, factors, torch.ones_like(factors)).prod(dim=2)

    def logits_from_similarities(self, maps: Tensor, pooled: Tensor) -> Tensor:
        """Class probabilities (B, C) (ProtoTree's 'distributed' routing)."""
        return self.path_probabilities(pooled) @ self.leaf_distributions()

    @property
    def class_weights(self) -> Tensor:
        """(C, P) 1 where the class is the argmax of a leaf under the prototype's right child."""
        return self.prototype_class_identity.t()

    @property
    def prototype_class_identity(self) -> Tensor:
        winners = self.leaf_distributions().argmax(dim=1)
        reach = (self.path_right & self.path_valid)  # (L, depth): leaf is right of path_index
        identity = torch.zeros(self.prototype_vectors.shape[0], len(self.class_names), device=winners.device)
        rows = self.path_index[reach]
        classes = winners[:, None].expand_as(reach)[reach]
        identity[rows, classes] = 1
        return identity

    @property
    def prototype_embeddings(self) -> Tensor:
        if self.config.prototype_size != (1, 1):
            raise ModelError("ProtoTree prototypes larger than 1x1 have no single embedding vector")
        return self.prototype_vectors.flatten(1)

    def decision_tree(self) -> list[TreeNode]:
        """The tree's nodes in config order (position 0 = root), leaves with their distributions."""
        dists = self.leaf_distributions().detach().cpu()
        depths = {0: 0}
        nodes = []
        for position, node in enumerate(self.config.tree):
            depth = depths.get(position, 0)
            if "leaf" in node:
                nodes.append(TreeNode(position, node["index"], depth, distribution=tuple(dists[node["leaf"]].tolist())))
                continue
            depths[node["left"]] = depths[node["right"]] = depth + 1
            nodes.append(TreeNode(position, node["index"], depth, node["prototype"], node["left"], node["right"]))
        return nodes

    def decision_path(self, x: Tensor) -> DecisionPath:
        """The greedy path of one normalised image (1, 3, H, W)."""
        if x.dim() != 4 or x.shape[0] != 1:
            raise ModelError(f"decision_path takes one image (1, 3, H, W), got {tuple(x.shape)}")
        with torch.no_grad():
            pooled = self(x).max_similarities[0].cpu()
        steps, position = [], 0
        while "leaf" not in self.config.tree[position]:
            node = self.config.tree[position]
            similarity = float(pooled[node["prototype"]])
            steps.append(PathStep(position, node["index"], node["prototype"], similarity, similarity > 0.5))
            position = node["right"] if similarity > 0.5 else node["left"]
        leaf = self.config.tree[position]
        dist = self.leaf_distributions()[leaf["leaf"]].detach().cpu()
        return DecisionPath(tuple(steps), position, leaf["index"], tuple(dist.tolist()), int(dist.argmax()))

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        tree = ({"index": 0, "prototype": 0, "left": 1, "right": 2}, {"index": 1, "leaf": 0},
                {"index": 2, "prototype": 1, "left": 3, "right": 4}, {"index": 3, "leaf": 1}, {"index": 4, "leaf": 2})
        return ProtoTreeConfig(class_names=("a", "b", "c"), tree=tree, backbone="tiny_cnn_small", prototype_dim=8,
                               input=InputSpec(image_size=(64, 64))).to_dict()

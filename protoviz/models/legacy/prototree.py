"""ProtoTree research checkpoints: a folder with ``model.pth`` (whole module), ``model_state.pth``
(state dict) and ``tree.pkl`` (plain pickle of the module).

Nodes keep ProtoTree's own numbers (``Node._index``, preorder in the unpruned tree); after pruning
(``prune.py`` splices a pruned node's sibling into its grandparent) the numbers have gaps and differ from
preorder positions. Pruned branches stay in ``_out_map`` and their prototype rows in ``prototype_layer``.

The branch -> prototype-row map ``_out_map`` is a dict keyed by node objects, built from a set ordered
by object ids, so it differs from process to process: a state dict alone cannot be re-attached to a
tree. protoviz therefore reads ``model.pth`` or ``tree.pkl`` (where the map round-trips) and refuses a
lone ``model_state.pth`` with that explanation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from protoviz.errors import CheckpointError
from protoviz.models.legacy.arch import infer_backbone
from protoviz.models.legacy.common import (
    class_names,
    input_spec,
    load_weights,
    module_tensors,
    rename,
    research_class,
)
from protoviz.models.prototree import ProtoTree, ProtoTreeConfig

FOLDER_FILES = ("model.pth", "tree.pkl")
STATE_ONLY_MESSAGE = (
    "is a ProtoTree state dict (model_state.pth): it cannot be re-attached to a tree, because the "
    "branch-to-prototype map (_out_map) is not in it and differs between processes (ProtoTree issue #8). "
    "Give model.pth or tree.pkl from the same folder, or the folder itself"
)


def _tree(root: nn.Module, out_map: dict[Any, Any], label: str) -> tuple[list[dict[str, int]], list[Tensor], bool]:
    """Preorder nodes, the leaves' dist params and the Kontschieder flag of a stand-in tree."""
    nodes: list[dict[str, int]] = []
    leaves: list[Tensor] = []
    flags: set[bool] = set()
    numbers: set[int] = set()

    def visit(node: nn.Module, depth: int = 0) -> int:
        if depth > 32 or len(nodes) > 100_000:
            raise CheckpointError(f"{label}: the tree is deeper than 32 levels or cyclic")
        position = len(nodes)
        index = vars(node).get("_index")  # Node keeps its number in _index (``index`` is a property)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0 or index in numbers:
            raise CheckpointError(f"{label}: tree node {position} has no valid, unique _index (found {index!r})")
        numbers.add(index)
        kind = research_class(node).rsplit(".", 1)[-1]
        if kind == "Leaf":
            params = getattr(node, "_dist_params", None)
            if not isinstance(params, Tensor):
                raise CheckpointError(f"{label}: leaf {index} has no _dist_params tensor")
            if getattr(node, "_log_probabilities", False):
                raise CheckpointError(f"{label}: ProtoTree's log_probabilities mode is not supported")
            flags.add(bool(getattr(node, "_kontschieder_normalization", False)))
            nodes.append({"index": index, "leaf": len(leaves)})
            leaves.append(params.detach().flatten())
            return position
        if kind != "Branch" or node not in out_map:
            raise CheckpointError(f"{label}: unexpected tree node {research_class(node) or type(node).__name__}")
        nodes.append({"index": index, "prototype": int(out_map[node]), "left": -1, "right": -1})
        nodes[position]["left"] = visit(cast(nn.Module, node.l), depth + 1)
        nodes[position]["right"] = visit(cast(nn.Module, node.r), depth + 1)
        return position

    visit(root)
    if len(flags) > 1:
        raise CheckpointError(f"{label}: leaves disagree on Kontschieder normalisation")
    return nodes, leaves, flags.pop() if flags else False


def from_module(module: nn.Module, label: str) -> ProtoTree:
    """Convert an unpickled ``prototree.prototree.ProtoTree`` stand-in."""
    root, out_map = getattr(module, "_root", None), getattr(module, "_out_map", None)
    if not isinstance(root, nn.Module) or not isinstance(out_map, dict):
        raise CheckpointError(f"{label}: the pickled ProtoTree has no _root tree or _out_map")
    nodes, leaves, kontschieder = _tree(root, out_map, label)
    state = {k: v for k, v in module_tensors(module, label).items() if not k.startswith("_root.")}
    vectors = state.get("prototype_layer.prototype_vectors")
    if vectors is None or vectors.dim() != 4:
        raise CheckpointError(f"{label}: expected prototype_layer.prototype_vectors (P, D, h, w)")
    rows = {n["prototype"] for n in nodes if "prototype" in n}
    if rows and (min(rows) < 0 or max(rows) >= vectors.shape[0]):
        raise CheckpointError(f"{label}: _out_map points outside the {vectors.shape[0]} prototype rows")
    C = int(leaves[0].numel())
    config = ProtoTreeConfig(class_names(C), tuple(nodes), infer_backbone(state, "_net."), int(vectors.shape[1]),
                             (int(vectors.shape[2]), int(vectors.shape[3])), int(vectors.shape[0]), kontschieder,
                             input_spec())
    model = ProtoTree(config)
    weights = rename(rename(state, "_net.", "features."), "_add_on.", "add_on.")
    weights["prototype_vectors"] = weights.pop("prototype_layer.prototype_vectors")
    weights["leaf_params"] = torch.stack(leaves)
    load_weights(model, weights, label)
    return model


def folder_file(folder: Path) -> Path:
    """The file of a ProtoTree folder to read: model.pth, else tree.pkl; a lone state dict is refused."""
    for name in FOLDER_FILES:
        if (folder / name).is_file():
            return folder / name
    if (folder / "model_state.pth").is_file():
        raise CheckpointError(f"{folder / 'model_state.pth'} {STATE_ONLY_MESSAGE}")
    raise CheckpointError(f"{folder} has no model.pth or tree.pkl")

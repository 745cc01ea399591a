"""Honest names for what a model is: its family as the papers call it, its similarity unit, its prototype sets.

The registry keys (``protopnet``, ``stprotopnet`` ...) name the code that rebuilds a model; a reader
needs the method's name (a native ProtoPNet built with support and trivial prototype sets *is* an
ST-ProtoPNet) and what a similarity of 4.66 or 0.99 means for that family.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FAMILY_NAMES: dict[str, str] = {
    "protopnet": "ProtoPNet", "tesnet": "TesNet", "stprotopnet": "ST-ProtoPNet", "protopool": "ProtoPool",
    "prototree": "ProtoTree", "pipnet": "PIP-Net", "deformable": "Deformable ProtoPNet",
}
ST_SETS = ("support", "trivial")

SIMILARITY_UNITS: dict[str, str] = {
    "log": "log similarity log((d + 1) / (d + 0.0001)) of the squared L2 distance d between patch and prototype: "
           "0 when far, at most 9.21 (d = 0)",
    "cosine": "cosine similarity of patch and prototype: from -1 (opposite) through 0 (unrelated) to 1 (same "
              "direction)",
    "relu_cosine": "cosine similarity clipped at 0: from 0 (unrelated) to 1 (same direction)",
    "projection": "projection of the patch on the prototype's unit vector: unbounded, larger = more similar",
    "focal_log": "focal similarity: the log similarity at the best patch minus its mean over the image; "
                 "0 = no better than an average patch",
    "exp_neg_l2": "exp(-L2 distance): from 0 (far) to 1 (identical); a branch of the tree goes right with this "
                  "probability",
    "softmax": "presence score: a softmax over the prototypes at each location, from 0 to 1; the head counts it "
               "only from its inference threshold",
    "deformable_cosine": "deformable cosine similarity of the prototype's parts with the sampled patches: from 0 to "
                         "about 0.99",
}


def family_label(family: str, config: Any = None) -> str:
    """The method's name for a model of registry ``family`` with ``config`` (e.g. 'ST-ProtoPNet')."""
    name = FAMILY_NAMES.get(family, family)
    if family == "protopnet" and config is not None:
        sets = tuple(getattr(config, "prototype_sets", ()))
        if sets == ST_SETS:
            return "ST-ProtoPNet"
        if getattr(config, "similarity", "log") == "cosine":
            return "ProtoPNet (cosine similarity)"
    return name


def similarity_unit(kind: str) -> str:
    """One line saying what a similarity of ``kind`` measures and its range."""
    return SIMILARITY_UNITS.get(kind, f"{kind} similarity: larger = more similar")


def prototype_set(groups: Mapping[str, tuple[int, int]], index: int) -> str | None:
    """The named set ('support', 'trivial' ...) prototype ``index`` belongs to; None for a single plain set."""
    if len(groups) <= 1:
        return None
    for name, (start, end) in groups.items():
        if start <= index < end:
            return name
    return None

"""Part-prototype models behind one interface; importing this registers every family."""

from protoviz.models import (  # noqa: F401  (research families)
    deformable,
    pipnet,
    protopnet,
    protopool,
    prototree,
    stprotopnet,
    tesnet,
)
from protoviz.models.base import InputSpec, ModelSummary, PrototypeModel, PrototypeOutput, PrototypeSource
from protoviz.models.loading import load_model
from protoviz.models.registry import build_model, list_families, register_family

__all__ = [
    "InputSpec", "ModelSummary", "PrototypeModel", "PrototypeOutput", "PrototypeSource",
    "build_model", "list_families", "load_model", "register_family",
]

"""Part-prototype models behind one interface; importing this registers every family."""

from protoviz.models import protopnet  # noqa: F401  (registers the native family)
from protoviz.models import deformable, pipnet, protopool, prototree, stprotopnet, tesnet  # noqa: F401  (research families)
from protoviz.models.base import InputSpec, ModelSummary, PrototypeModel, PrototypeOutput, PrototypeSource
from protoviz.models.registry import build_model, list_families, load_model, register_family

__all__ = [
    "InputSpec", "ModelSummary", "PrototypeModel", "PrototypeOutput", "PrototypeSource",
    "build_model", "list_families", "load_model", "register_family",
]

"""Load a kept model as the user set it up: its file, then its load hints, class names and attached sources.

A model kept in the workspace (:mod:`protoviz.kept_models`) records, next to its checkpoint file, what
the user chose on the Models page. :func:`load_kept` applies it on every load, in this order:

1. ``load_model(file, family=..., **hints)``: the family hint (ProtoPNet / TesNet state dicts) and the
   hints the file cannot tell (ProtoPool ``slots``, ``activation``, PIP-Net ``backbone``); each is
   recorded in ``metadata["load_hints"]`` with why it was chosen;
2. the class names (:func:`~protoviz.data.classnames.with_class_names`, count checked);
3. the attached prototype sources, read from the workspace run that found them
   (:class:`~protoviz.sources.stored.SourceSet`). If that run was deleted, the model keeps its file's
   own sources and ``metadata["kept_sources_missing"]`` says so.

Identity: results are keyed by ``metadata["checkpoint_sha256"]``. A model loaded with any of these
settings computes (or shows) something other than its bare file, so its ``checkpoint_sha256`` becomes
the digest of the file's sha256 and the settings (:func:`kept_identity`); the file's own digest stays in
``metadata["file_sha256"]``. With no setting, both are the file's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protoviz.errors import ConfigError, WorkspaceError
from protoviz.models.hints import HINT_FAMILIES, record_choice

if TYPE_CHECKING:
    import torch

    from protoviz.kept_models import StoredModel
    from protoviz.models.base import PrototypeModel
    from protoviz.workspace import Workspace

PAGE_WHY = "chosen on the Models page"
FAMILY_HINTS = ("protopnet", "tesnet")


@dataclass(frozen=True)
class KeptSettings:
    """What a kept model is loaded with besides its file.

    family: the family hint or None. hints: ``slots`` / ``activation`` / ``backbone`` -> value.
    class_names: names replacing the checkpoint's, or None. sources: the attached sources' description
    (with ``run_id``, the workspace run holding them), or None.
    """

    family: str | None = None
    hints: Mapping[str, str] = field(default_factory=dict)
    class_names: tuple[str, ...] | None = None
    sources: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.hints) - set(HINT_FAMILIES))
        if unknown:
            raise ConfigError(f"unknown load hint(s) {', '.join(unknown)}; known: {', '.join(HINT_FAMILIES)}")

    @classmethod
    def of(cls, stored: StoredModel) -> KeptSettings:
        """The settings a kept model records."""
        hints = {k: str(v) for k, v in (stored.hints or {}).items() if v is not None}
        return cls(stored.family, hints, stored.class_names, stored.sources)

    @property
    def applied(self) -> bool:
        """Whether anything changes the model from its bare file."""
        return bool(self.family or self.hints or self.class_names or self.sources)

    def to_json(self) -> str:
        """Canonical JSON (a cache key)."""
        return json.dumps({"family": self.family, "hints": dict(sorted(self.hints.items())),
                           "class_names": list(self.class_names) if self.class_names is not None else None,
                           "sources": _source_ref(self.sources)}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> KeptSettings:
        value = json.loads(text)
        names = value.get("class_names")
        return cls(value.get("family"), value.get("hints") or {}, tuple(names) if names is not None else None,
                   value.get("sources"))


def kept_identity(file_sha256: str | None, settings: KeptSettings) -> str | None:
    """The sha256 that identifies a file loaded with ``settings`` (the file's own when nothing applies)."""
    if file_sha256 is None or not settings.applied:
        return file_sha256
    text = json.dumps({"file": file_sha256, "settings": json.loads(settings.to_json())}, sort_keys=True)
    return hashlib.sha256(f"protoviz-kept-model:{text}".encode()).hexdigest()


def load_kept(path: str | Path, settings: KeptSettings, device: str | torch.device | None = None,
              workspace: Workspace | None = None) -> PrototypeModel:
    """Load ``path`` with ``settings`` applied (see the module docstring). ``workspace`` holds the run of
    the attached sources (needed only when ``settings.sources`` names one)."""
    from protoviz.data.classnames import with_class_names
    from protoviz.models.loading import load_model

    hints = settings.hints
    model = load_model(path, family=settings.family, device=device, slots=hints.get("slots"),
                       activation=hints.get("activation"), backbone=hints.get("backbone"))
    for name, value in settings.hints.items():
        record_choice(model.metadata, name, value, PAGE_WHY)
    if settings.family:
        record_choice(model.metadata, "family", settings.family,
                      f"{PAGE_WHY} (ProtoPNet and TesNet state dicts hold the same tensors)")
    if settings.class_names is not None:
        model = with_class_names(model, settings.class_names)
    if settings.sources:
        _attach(model, settings.sources, workspace)
    file_sha = model.metadata.get("checkpoint_sha256")
    model.metadata["file_sha256"] = file_sha
    model.metadata["checkpoint_sha256"] = kept_identity(file_sha, settings)
    return model


def _attach(model: PrototypeModel, sources: Mapping[str, Any], workspace: Workspace | None) -> None:
    from protoviz.payload import decode
    from protoviz.sources.stored import SourceSet

    run_id = sources.get("run_id")
    try:
        if workspace is None or not isinstance(run_id, int):
            raise WorkspaceError("the attached sources name no stored run")
        found = decode(workspace.get_run(run_id).payload)
        if not isinstance(found, SourceSet):
            raise WorkspaceError(f"run #{run_id} holds no prototype sources")
    except WorkspaceError as error:
        model.metadata["kept_sources_missing"] = (f"the prototype sources attached on the Models page are gone "
                                                  f"({error}); showing the file's own. Attach them again.")
        return
    if len(found.sources) != model.num_prototypes:
        raise ConfigError(f"the attached sources (run #{run_id}) are for {len(found.sources)} prototypes; this "
                          f"model has {model.num_prototypes}")
    model.prototype_sources = list(found.sources)
    model.metadata["prototype_sources_from"] = {**found.description(), "run_id": run_id}


def _source_ref(sources: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The part of a sources description that identifies them (the run and when it was attached)."""
    if not sources:
        return None
    return {"run_id": sources.get("run_id"), "attached_at": sources.get("attached_at")}

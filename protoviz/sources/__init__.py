"""Prototype sources ("that" in "this looks like that") for any checkpoint.

- :func:`project_sources`: each prototype's nearest training patch, found the way its family's push
  picks it, in one streaming pass (:mod:`protoviz.sources.projection`);
- :func:`import_push_folder`: what an original push wrote (:mod:`protoviz.sources.pushdir`);
- :func:`attach_sources`: put either on a model, recording how they were found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from protoviz.errors import ConfigError
from protoviz.models.base import PrototypeModel, PrototypeSource
from protoviz.sources.projection import Projection, ProjectionAccumulator, project_shard, project_sources
from protoviz.sources.pushdir import PushImport, import_push_folder

__all__ = ["Projection", "ProjectionAccumulator", "PushImport", "attach_sources", "import_push_folder",
           "project_shard", "project_sources"]


def attach_sources(model: PrototypeModel, sources: list[PrototypeSource | None], method: str,
                   data_dir: str | Path, **details: Any) -> PrototypeModel:
    """Set ``model.prototype_sources`` and record in its metadata how they were found (saved with it)."""
    if len(sources) != model.num_prototypes:
        raise ConfigError(f"{len(sources)} sources for a model with {model.num_prototypes} prototypes")
    model.prototype_sources = list(sources)
    model.metadata["prototype_sources_from"] = {"method": method, "data": str(data_dir),
                                                "found": sum(s is not None for s in sources), **details}
    return model

"""protoviz: see, check and compare what part-prototype networks learned.

``load_model`` and ``save_model`` are imported on first use, so that ``import protoviz`` (and the
command line's ``--help``) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protoviz.models import load_model
    from protoviz.models.checkpoint import save_model

__version__ = "0.1.0"
__all__ = ["__version__", "load_model", "save_model"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from protoviz.models import load_model

        return load_model
    if name == "save_model":
        from protoviz.models.checkpoint import save_model

        return save_model
    raise AttributeError(f"module 'protoviz' has no attribute {name!r}")

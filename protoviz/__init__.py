"""protoviz: see, check and compare what part-prototype networks learned."""

from protoviz.models import load_model
from protoviz.models.checkpoint import save_model

__version__ = "0.1.0"
__all__ = ["__version__", "load_model", "save_model"]

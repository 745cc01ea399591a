"""Re-randomising a model's layers, for the ``random`` baseline and the parameter-randomisation check.

Works on any family through plain module types: every ``nn.Conv*`` and ``nn.Linear`` is a
"parameterised layer"; prototype vectors and normalisation layers are left as trained (they are not
layers with a generic initialisation). Layers are listed in registration order, which for the native
families is forward order (backbone, add-on, head), so "from the top" means from the end of the list.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from protoviz.models.base import PrototypeModel

_SEED_SALT = 0x5EED_CAFE
LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def parameterised_layers(model: nn.Module) -> list[str]:
    """Names of the model's Conv/Linear modules, in registration order."""
    return [name for name, module in model.named_modules() if isinstance(module, LAYER_TYPES)]


def randomise_layers_(model: nn.Module, names: Sequence[str], seed: int) -> None:
    """Re-initialise the named Conv/Linear modules in place like PyTorch's default init, seeded.

    Weights: Kaiming-uniform with a = sqrt(5); biases: uniform in +-1/sqrt(fan_in). The numbers are
    drawn on the CPU from one generator, so the same seed gives the same weights on every device. The
    generator's seed is derived from ``seed`` (not equal to it) so that an untrained model initialised
    after ``torch.manual_seed(seed)`` is not re-drawn identically.
    """
    generator = torch.Generator().manual_seed(_SEED_SALT + 7919 * seed)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name in names:
            module = modules[name]
            weight = module.weight
            fresh = torch.empty(weight.shape, dtype=weight.dtype)
            nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=generator)
            weight.copy_(fresh.to(weight.device))
            if getattr(module, "bias", None) is not None:
                fan_in = weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                bias = torch.empty(module.bias.shape, dtype=module.bias.dtype)
                bias.uniform_(-bound, bound, generator=generator)
                module.bias.copy_(bias.to(module.bias.device))


def randomised_copy(model: PrototypeModel, names: Sequence[str] | None = None, seed: int = 0) -> PrototypeModel:
    """A deep copy of ``model`` (same device, eval mode) with the named layers (default: all) re-randomised."""
    clone = copy.deepcopy(model)
    randomise_layers_(clone, parameterised_layers(clone) if names is None else names, seed)
    return clone.eval()

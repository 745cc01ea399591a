"""Loading research checkpoints without ever executing anything they contain.

Three container formats reach us:

- **zip** (``torch.save`` since PyTorch 1.6): PyTorch's own ``weights_only`` unpickler, extended with
  :func:`allowed_globals` for the globals the file names (listed statically first, so a refused file
  is reported by name before any object is built).
- **legacy** (``_use_new_zipfile_serialization=False``, PyTorch < 1.6): ``torch.load`` with a
  restricted ``pickle_module`` whose ``find_class`` returns only allow-listed objects.
- **plain pickle** (ProtoTree's ``tree.pkl``): the same restricted unpickler. Tensors in such files
  are storages saved through ``torch.storage._load_from_bytes``, which would run an unrestricted
  ``torch.load``; it is replaced by :func:`_load_storage_bytes`, which loads the bytes through this
  module again, on the requested device.

The allow-list names every object it allows: tensor/storage rebuild functions, dtypes, ``torch.Size``,
``torch.device``, ``torch.nn`` module classes by name, a few torchvision blocks and inert builtins.
Classes of the research repositories (``model.PPNet``, ``resnet_features.BasicBlock``,
``prototree.branch.Branch`` ...) become :class:`StandIn` modules: empty ``nn.Module`` subclasses with
the same ``__module__``/``__qualname__`` and no behaviour, so their attributes and state dict come back
and nothing of theirs runs. Every other global raises :class:`CheckpointError` naming it.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
import re
import types
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import densenet as tv_densenet
from torchvision.models import resnet as tv_resnet
from torchvision.models import vgg as tv_vgg

from protoviz.errors import CheckpointError

# Top-level module names of the research repositories whose classes get inert stand-ins.
RESEARCH_MODULES: frozenset[str] = frozenset({
    "model", "models", "resnet_features", "vgg_features", "densenet_features",  # ProtoPNet, TesNet, ST, Deformable
    "features", "prototree", "util",  # ProtoTree (features.resnet_features, prototree.branch, util.l2conv)
    "pipnet", "deformable_conv", "receptive_field",
})
_MAX_BYTES = 2 << 30
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_NN_CLASSES: tuple[type, ...] = (
    nn.Conv2d, nn.Conv1d, nn.ConvTranspose2d, nn.Linear, nn.Bilinear, nn.Identity,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d, nn.LocalResponseNorm,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
    nn.Softmax, nn.LogSoftmax, nn.Softplus, nn.Hardswish, nn.Hardsigmoid,
    nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Upsample, nn.Flatten,
    nn.Dropout, nn.Dropout2d, nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.ParameterList,
    nn.ParameterDict, nn.DataParallel,
    tv_resnet.ResNet, tv_resnet.BasicBlock, tv_resnet.Bottleneck, tv_vgg.VGG, tv_densenet.DenseNet,
    tv_densenet._DenseBlock, tv_densenet._DenseLayer, tv_densenet._Transition,
)
_TENSOR_FUNCTIONS: tuple[Callable[..., Any], ...] = (
    torch._utils._rebuild_tensor, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter,
    torch._utils._rebuild_parameter_with_state,
)


class StandIn(nn.Module):
    """An inert module standing in for a research-repository class; it only holds the pickled state."""

    research_class: str = ""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise CheckpointError(f"{self.research_class} is a stand-in for research code and cannot run")


@cache
def stand_in(module: str, name: str) -> type[StandIn]:
    """The stand-in class for ``module.name`` (one class per name, so pickled identity is kept)."""
    return type(name, (StandIn,), {"__module__": module, "__qualname__": name, "research_class": f"{module}.{name}"})


def is_research_global(module: str, name: str) -> bool:
    """True for a class path of a research repository (``model.PPNet``, ``prototree.leaf.Leaf``)."""
    return module.split(".")[0] in RESEARCH_MODULES and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is not None


def _encode_latin1(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, limited to latin-1."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise CheckpointError(f"refused _codecs.encode with encoding {encoding!r} (only latin1 builds bytes)")
    return text.encode("latin1")


def _no_backend() -> None:
    """Stand-in for the THNN backend old modules pickled (it holds nothing)."""
    return


@cache
def allowed_globals() -> dict[str, Any]:
    """Every global a checkpoint may name, by ``module.qualname``, except research stand-ins."""
    allowed: dict[str, Any] = {f"{c.__module__}.{c.__qualname__}": c for c in _NN_CLASSES}
    allowed.update({f"torch._utils.{f.__name__}": f for f in _TENSOR_FUNCTIONS})
    allowed.update({str(t): t for t in torch.storage._dtype_to_storage_type_map()})
    allowed.update({
        "torch.nn.parameter.Parameter": nn.Parameter, "torch.Size": torch.Size, "torch.device": torch.device,
        "collections.OrderedDict": OrderedDict, "builtins.set": set, "builtins.frozenset": frozenset,
        "builtins.bytearray": bytearray, "builtins.complex": complex, "_codecs.encode": _encode_latin1,
        # PyTorch <= 1.3 pickled every module's ``_backend`` through this; torch keeps it as a no-op.
        "torch.nn.backends.thnn._get_thnn_function_backend": _no_backend,
    })
    return allowed


def python3_name(module: str, name: str) -> tuple[str, str]:
    """The Python 3 spelling of a protocol-2 global (``__builtin__.set``, ``commands.Popen`` ...)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def resolve_global(module: str, name: str) -> Any:
    """The allowed object for a pickled global, or :class:`CheckpointError` naming it."""
    module, name = python3_name(module, name)
    full = f"{module}.{name}"
    allowed = allowed_globals()
    if full in allowed:
        return allowed[full]
    if is_research_global(module, name):
        return stand_in(module, name)
    raise CheckpointError(f"refused to load the global {full!r}: it is not on protoviz's allow-list of "
                          "tensor, torch.nn and research-model classes, so the file could run code")


class RestrictedUnpickler(pickle.Unpickler):
    """A pickle reader that builds only allow-listed objects (see :func:`resolve_global`)."""

    device: torch.device = torch.device("cpu")

    def find_class(self, module: str, name: str) -> Any:
        if python3_name(module, name) == ("copyreg", "_reconstructor"):
            return _reconstructor
        if module == "torch.storage" and name == "_load_from_bytes":
            device = self.device
            return lambda data: _load_storage_bytes(data, device)
        return resolve_global(module, name)


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """Protocol 0/1 object creation, allowed only as ``object.__new__`` of an allowed class."""
    if base is not object or not (issubclass(cls, StandIn) or cls in allowed_globals().values()):
        raise CheckpointError(f"refused copyreg._reconstructor({cls!r}, {base!r})")
    return object.__new__(cls)


def restricted_pickle_module(device: torch.device) -> types.ModuleType:
    """A ``pickle_module`` for ``torch.load`` whose unpickler is restricted and maps storages to ``device``."""
    unpickler = type("DeviceRestrictedUnpickler", (RestrictedUnpickler,), {"device": device})
    module = types.ModuleType("protoviz_restricted_pickle")
    module.Unpickler = unpickler  # type: ignore[attr-defined]
    module.load = lambda file, **kwargs: unpickler(file, **kwargs).load()  # type: ignore[attr-defined]
    module.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
    return module


def _load_storage_bytes(data: bytes, device: torch.device) -> Any:
    """Replacement for ``torch.storage._load_from_bytes``: the bytes are a torch.save stream."""
    if not isinstance(data, bytes):
        raise CheckpointError("a pickled storage did not hold bytes")
    return load_bytes(data, device, label="a storage inside the pickle")


# ----- entry points ------------------------------------------------------------------------
def load_file(path: Path, device: torch.device | str = "cpu") -> Any:
    """Read any torch/pickle checkpoint file safely; tensors end on ``device``."""
    size = path.stat().st_size
    if size > _MAX_BYTES:
        raise CheckpointError(f"{path.name} is {size / 2**30:.1f} GiB; protoviz reads checkpoints up to 2 GiB")
    return load_bytes(path.read_bytes(), torch.device(device), label=path.name)


def load_bytes(data: bytes, device: torch.device, label: str = "checkpoint") -> Any:
    """Read checkpoint bytes in zip, legacy or plain-pickle format (see the module docstring)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SourceChangeWarning and friends from old files
        try:
            if zipfile.is_zipfile(io.BytesIO(data)):
                return _load_zip(data, device, label)
            if _starts_with_legacy_magic(data, device):
                return torch.load(io.BytesIO(data), map_location=device, weights_only=False,
                                  pickle_module=restricted_pickle_module(device))
            return restricted_pickle_module(device).load(io.BytesIO(data))
        except CheckpointError:
            raise
        except Exception as error:  # torch and pickle raise many kinds on corrupt input
            raise CheckpointError(f"{label} could not be read as a PyTorch or pickle checkpoint: "
                                  f"{type(error).__name__}: {error}") from error


def _starts_with_legacy_magic(data: bytes, device: torch.device) -> bool:
    if not data.startswith(b"\x80"):
        return False  # protocol 0/1 pickles have no protocol byte; torch.save never writes them
    try:
        first = restricted_pickle_module(device).load(io.BytesIO(data))
    except CheckpointError:
        raise
    except Exception:  # noqa: BLE001 - any failure to read a first pickle means "not the legacy magic"
        return False
    return isinstance(first, int) and first == _LEGACY_MAGIC


def _load_zip(data: bytes, device: torch.device, label: str) -> Any:
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(data))
    except ValueError as error:
        raise CheckpointError(f"{label} is a zip archive but not a torch.save checkpoint "
                              f"(TorchScript archives are not supported): {error}") from error
    extra = []
    for full in sorted(names):
        module, _, name = full.rpartition(".")
        extra.append((resolve_global(module, name), full))
    try:
        with torch.serialization.safe_globals(extra):
            return torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{label} was refused by the weights-only loader: {error}") from error

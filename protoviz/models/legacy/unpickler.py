"""The restricted pickle reader behind every research checkpoint: it rebuilds, it never calls.

A pickle is a program; this reader runs only the harmless part of it. It is the pure-Python
``pickle._Unpickler`` with the opcodes that call or mutate objects replaced:

- globals resolve only through :func:`resolve_global`: tensor rebuild functions, dtypes, storage
  kinds, ``torch.Size``/``torch.device``, ``torch.nn`` and torchvision module classes, a few inert
  builtins, and :class:`StandIn` classes for the research repositories' own classes
  (``model.PPNet``, ``prototree.branch.Branch`` ...); any other name raises :class:`CheckpointError`;
- ``NEWOBJ`` / ``copyreg._reconstructor`` may *create* instances of module classes (``cls.__new__``,
  no ``__init__``, no arguments), and ``BUILD`` may fill a module's or an OrderedDict's attributes:
  this is how ``torch.save(model)`` pickles a model;
- ``REDUCE`` calls only the functions of :data:`CALLS`, each checking its arguments: tensor rebuilds
  accept only dense tensors over storages this loader read from the file (no stride-0 or overlapping
  views claiming more elements than present, no meta/sparse/quantized/nested layouts); inert
  constructors (``OrderedDict``, ``set``, ``torch.Size``, ``torch.device``, ``complex``) get checked
  arguments. No class is ever *called* (``nn.Linear(30000, 30000)`` or ``bytearray(2**33)`` would
  allocate before anything could refuse them); ``INST``/``OBJ`` may only create modules as ``NEWOBJ``;
- ``APPEND(S)``/``SETITEM(S)``/``ADDITEMS`` work only on plain lists, dicts and sets;
- the number of opcodes is bounded (:class:`ModelLimits.max_pickle_ops`).

Storages reach the reader through ``persistent_load`` from the container being read
(:mod:`protoviz.models.legacy.containers`), so every tensor's bytes were present in the file.
The reader keeps no process-wide state: concurrent loads do not interfere.
"""

from __future__ import annotations

import _compat_pickle
import math
import pickle
import re
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torchvision.models import densenet as tv_densenet
from torchvision.models import resnet as tv_resnet
from torchvision.models import vgg as tv_vgg

from protoviz.errors import CheckpointError
from protoviz.models.limits import DEFAULT_LIMITS, ModelLimits, safe_name

# Top-level module names of the research repositories whose classes get inert stand-ins.
RESEARCH_MODULES: frozenset[str] = frozenset({
    "model", "models", "resnet_features", "vgg_features", "densenet_features",  # ProtoPNet, TesNet, ST, Deformable
    "features", "prototree", "util",  # ProtoTree (features.resnet_features, prototree.branch, util.l2conv)
    "pipnet", "deformable_conv", "receptive_field",
})

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
# dtypes a checkpoint tensor may have (no quantized or bit-packed types).
SAFE_DTYPES: frozenset[torch.dtype] = frozenset({
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool,
})
_STORAGE_DTYPES: dict[str, torch.dtype] = {
    **{name: dtype for dtype, name in torch.storage._dtype_to_storage_type_map().items() if dtype in SAFE_DTYPES},
    "UntypedStorage": torch.uint8,
}
_MODULE_ALIASES = {"torch.tensor": "torch._tensor"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_DIMS = 16


class StandIn(nn.Module):
    """An inert module standing in for a research-repository class; it only holds the pickled state."""

    research_class: str = ""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise CheckpointError(f"{self.research_class} is a stand-in for research code and cannot run")


class StorageKind:
    """What a pickled ``torch.FloatStorage`` (etc.) stands for: a dtype. It is never called."""

    __slots__ = ("dtype", "name")

    def __init__(self, name: str, dtype: torch.dtype):
        self.name, self.dtype = name, dtype


_MAX_STAND_INS = 10_000  # distinct research classes one file may name (ProtoTree with ResNet-152: ~15)


def stand_in(module: str, name: str) -> type[StandIn]:
    """A new stand-in class for ``module.name``. Readers keep one per name and per load (not per process,
    so a file naming millions of classes cannot grow the server's memory for good)."""
    return type(name, (StandIn,), {"__module__": module, "__qualname__": name, "research_class": f"{module}.{name}"})


def is_research_global(module: str, name: str) -> bool:
    """True for a class path of a research repository (``model.PPNet``, ``prototree.leaf.Leaf``)."""
    return (module.split(".")[0] in RESEARCH_MODULES and len(module) <= 200 and len(name) <= 200
            and _IDENTIFIER.fullmatch(name) is not None)


def _no_backend() -> None:
    """Stand-in for the THNN backend old modules pickled (it holds nothing)."""
    return


@cache
def allowed_globals() -> dict[str, Any]:
    """Every global a checkpoint may name, by ``module.qualname``, except research stand-ins and storage kinds."""
    allowed: dict[str, Any] = {f"{c.__module__}.{c.__qualname__}": c for c in _NN_CLASSES}
    allowed.update({f"torch._utils.{name}": function for name, function in _TENSOR_FUNCTIONS.items()})
    allowed.update({str(dtype): dtype for dtype in SAFE_DTYPES})
    allowed.update({
        "torch.nn.parameter.Parameter": nn.Parameter, "torch.Size": torch.Size, "torch.device": torch.device,
        "collections.OrderedDict": OrderedDict, "builtins.set": set, "builtins.frozenset": frozenset,
        "builtins.complex": complex, "_codecs.encode": _encode_latin1,
        # PyTorch <= 1.3 pickled every module's ``_backend`` through this; torch keeps it as a no-op.
        "torch.nn.backends.thnn._get_thnn_function_backend": _no_backend,
    })
    return allowed


def python3_name(module: str, name: str) -> tuple[str, str]:
    """The Python 3 spelling of a protocol-2 global (``__builtin__.set``, ``commands.Popen`` ...)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def resolve_global(module: str, name: str, stand_ins: dict[str, type[StandIn]] | None = None) -> Any:
    """The allowed object for a pickled global, or :class:`CheckpointError` naming it.

    Research classes become stand-ins, kept in ``stand_ins`` (one class per name within a load).
    """
    module, name = python3_name(module, name)
    module = _MODULE_ALIASES.get(module, module)
    full = f"{module}.{name}"
    allowed = allowed_globals()
    if full in allowed:
        return allowed[full]
    if module in ("torch", "torch.cuda") and name in _STORAGE_DTYPES:
        return StorageKind(name, _STORAGE_DTYPES[name])
    if is_research_global(module, name):
        if stand_ins is None:
            return stand_in(module, name)
        if full not in stand_ins:
            if len(stand_ins) >= _MAX_STAND_INS:
                raise CheckpointError(f"the file names more than {_MAX_STAND_INS} research classes")
            stand_ins[full] = stand_in(module, name)
        return stand_ins[full]
    raise CheckpointError(f"refused to load the global {safe_name(full, 120)}: it is not on protoviz's allow-list "
                          "of tensor, torch.nn and research-model classes, so the file could run code")


def is_module_class(cls: Any) -> bool:
    """Classes a pickle may create with ``cls.__new__`` (no ``__init__``): allowed modules and stand-ins."""
    return isinstance(cls, type) and (issubclass(cls, StandIn) or cls in _NN_CLASSES)


# ----- calls a pickle may make (REDUCE), each checking its arguments ------------------------------
def _refuse(what: str) -> CheckpointError:
    return CheckpointError(f"refused {what}: checkpoints may only rebuild tensors and modules")


def _encode_latin1(text: Any = "", encoding: Any = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, limited to latin-1."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise CheckpointError(f"refused _codecs.encode with encoding {safe_name(encoding)} (only latin1 builds bytes)")
    return text.encode("latin1")


def _ints(values: Any, what: str, low: int = 0) -> tuple[int, ...]:
    if isinstance(values, torch.Size):
        values = tuple(values)
    if not isinstance(values, tuple | list) or len(values) > _MAX_DIMS:
        raise _refuse(f"a tensor whose {what} is not a short list of whole numbers")
    if not all(isinstance(v, int) and not isinstance(v, bool) and low <= v < 1 << 48 for v in values):
        raise _refuse(f"a tensor with a negative or huge {what}")
    return tuple(values)


def checked_tensor(storage: Any, offset: Any, size: Any, stride: Any) -> Tensor:
    """A CPU tensor over a storage read from the file, claiming no more elements than the storage holds."""
    if not isinstance(storage, torch.storage.TypedStorage) or storage._untyped_storage.device.type != "cpu":
        raise _refuse("a tensor whose storage was not read from the file")
    if storage.dtype not in SAFE_DTYPES:
        raise _refuse(f"a tensor of dtype {storage.dtype}")
    (offset,), size, stride = _ints((offset,), "offset"), _ints(size, "shape"), _ints(stride, "strides")
    if len(size) != len(stride):
        raise _refuse("a tensor whose shape and strides differ in length")
    available = storage._size()
    numel = math.prod(size)
    if numel:
        if any(s > 1 and st == 0 for s, st in zip(size, stride, strict=True)):
            raise _refuse("a stride-0 tensor (it would claim elements that are not in the file)")
        extent = offset + sum((s - 1) * st for s, st in zip(size, stride, strict=True)) + 1
        if numel > available or extent > available:
            raise _refuse(f"a tensor of {numel:,} elements over a storage of {available:,}")
    return torch.empty((0,), dtype=storage.dtype).set_(storage._untyped_storage, offset, size, stride)


def _no_hooks(hooks: Any) -> None:
    if hooks not in (None, {}) and not (isinstance(hooks, dict) and not hooks):
        raise _refuse("a tensor with backward hooks")


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> Tensor:
    return checked_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None) -> Tensor:
    tensor = checked_tensor(storage, storage_offset, size, stride)
    _no_hooks(backward_hooks)
    if metadata:
        raise _refuse("a tensor with extra metadata (conjugate/negative views)")
    if requires_grad is True and tensor.is_floating_point():
        tensor.requires_grad_(True)
    return tensor


def _rebuild_parameter(data: Any, requires_grad: Any = True, backward_hooks: Any = None) -> nn.Parameter:
    if not isinstance(data, Tensor) or isinstance(data, nn.Parameter):
        raise _refuse("a parameter that does not wrap a tensor")
    _no_hooks(backward_hooks)
    return nn.Parameter(data.detach(), requires_grad=bool(requires_grad) and data.is_floating_point())


def _rebuild_parameter_with_state(data: Any, requires_grad: Any, backward_hooks: Any, state: Any) -> nn.Parameter:
    parameter = _rebuild_parameter(data, requires_grad, backward_hooks)
    dict_state = state[0] if isinstance(state, tuple) and len(state) == 2 else state
    if isinstance(state, tuple) and len(state) == 2 and state[1]:
        raise _refuse("a parameter with slot state")
    if dict_state:
        for key, value in _plain_state(dict_state, "a parameter").items():
            if hasattr(nn.Parameter, key):  # data, grad, names, real ... are the tensor's own
                raise _refuse(f"a parameter state that replaces its {safe_name(key)}")
            setattr(parameter, key, value)
    return parameter


_TENSOR_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "_rebuild_tensor": _rebuild_tensor, "_rebuild_tensor_v2": _rebuild_tensor_v2,
    "_rebuild_parameter": _rebuild_parameter, "_rebuild_parameter_with_state": _rebuild_parameter_with_state,
}


def _ordered_dict(*args: Any) -> OrderedDict[Any, Any]:
    if args == ():
        return OrderedDict()
    if len(args) == 1 and isinstance(args[0], list | tuple) and all(
            isinstance(p, list | tuple) and len(p) == 2 for p in args[0]):
        return OrderedDict(args[0])
    raise _refuse("an OrderedDict built from anything but key-value pairs")


def _set_of(kind: type) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        if args == ():
            return kind()
        if len(args) == 1 and isinstance(args[0], list | tuple | set | frozenset):
            return kind(args[0])
        raise _refuse(f"a {kind.__name__} built from anything but a list")
    return build


def _size(*args: Any) -> torch.Size:
    if len(args) != 1:
        raise _refuse("torch.Size with other than one argument")
    return torch.Size(_ints(args[0], "size"))


def _device(*args: Any) -> torch.device:
    if not 1 <= len(args) <= 2 or not isinstance(args[0], str) or len(args[0]) > 32 or \
            (len(args) == 2 and (not isinstance(args[1], int) or not 0 <= args[1] < 1024)):
        raise _refuse("torch.device with unexpected arguments")
    return torch.device(*args)


def _complex(*args: Any) -> complex:
    if len(args) > 2 or not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args):
        raise _refuse("complex() of anything but numbers")
    return complex(*args)


def _reconstructor(cls: Any, base: Any, state: Any = None) -> Any:
    """Protocol 0/1 object creation, allowed only as ``object.__new__`` of a module class."""
    if base is not object or state is not None or not is_module_class(cls):
        raise _refuse("copyreg._reconstructor of anything but a module class")
    return object.__new__(cls)


# Callables REDUCE may call (by identity) -> the function called instead, which checks the arguments.
CALLS: dict[Any, Callable[..., Any]] = {
    **{f: f for f in _TENSOR_FUNCTIONS.values()},
    _encode_latin1: _encode_latin1, _no_backend: _no_backend, _reconstructor: _reconstructor,
    OrderedDict: _ordered_dict, set: _set_of(set), frozenset: _set_of(frozenset), torch.Size: _size,
    torch.device: _device, complex: _complex,
}


def _plain_state(state: Any, what: str) -> dict[str, Any]:
    """A BUILD state: a dict of plain attribute names (no dunders)."""
    if isinstance(state, tuple) and len(state) == 2 and not state[1]:
        state = state[0]
    if state is None:
        return {}
    if not isinstance(state, dict):
        raise _refuse(f"the state of {what} that is not a dict")
    for key in state:
        if not isinstance(key, str) or not _IDENTIFIER.fullmatch(key) or key.startswith("__"):
            raise _refuse(f"an attribute name {safe_name(key)} on {what}")
    return state


# ----- the reader --------------------------------------------------------------------------------
_DISPATCH = pickle._Unpickler.dispatch  # type: ignore[attr-defined]


class RestrictedUnpickler(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """A pickle reader that builds only allow-listed objects (see the module docstring).

    ``persistent``: the container's handler of persistent ids (storages), or None to refuse them.
    ``load_from_bytes``: the handler of ``torch.storage._load_from_bytes`` (nested storages), or None.
    """

    dispatch: ClassVar[dict[int, Callable[..., Any]]] = dict(_DISPATCH)
    pop_mark: Callable[[], list[Any]]  # of pickle._Unpickler

    def __init__(self, file: Any, *, persistent: Callable[[Any], Any] | None = None,
                 load_from_bytes: Callable[[bytes], Any] | None = None, limits: ModelLimits = DEFAULT_LIMITS,
                 encoding: str = "utf-8"):
        super().__init__(file, encoding=encoding)
        self._source = file
        self._stand_ins: dict[str, type[StandIn]] = {}
        self._persistent = persistent
        self._limits = limits
        self._from_bytes = (lambda data: load_from_bytes(_bytes_arg(data))) if load_from_bytes else None
        self._ops = 0

    # globals ------------------------------------------------------------------------------------
    def find_class(self, module: str, name: str) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            raise CheckpointError("a pickled global name is not text")
        if python3_name(module, name) == ("copyreg", "_reconstructor"):
            return _reconstructor
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            if self._from_bytes is None:
                raise CheckpointError("refused a nested storage stream inside a nested storage stream")
            return self._from_bytes
        return resolve_global(module, name, self._stand_ins)

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise CheckpointError("this pickle refers to external storages, which its container does not have")
        return self._persistent(pid)

    # the main loop, with an opcode budget --------------------------------------------------------
    def load(self) -> Any:
        self._unframer = pickle._Unframer(self._file_read, self._file_readline)  # type: ignore[attr-defined]
        self.read = self._unframer.read
        self.readinto = self._unframer.readinto
        self.readline = self._unframer.readline
        self.metastack: list[Any] = []
        self.stack: list[Any] = []
        self.append = self.stack.append
        self.proto = 0
        read, dispatch, budget = self.read, self.dispatch, self._limits.max_pickle_ops
        try:
            while True:
                key = read(1)
                if not key:
                    raise CheckpointError("the pickle stream ends before its STOP opcode (truncated file?)")
                self._ops += 1
                if self._ops > budget:
                    raise CheckpointError(f"the pickle stream has more than {budget:,} opcodes")
                handler = dispatch.get(key[0])
                if handler is None:
                    raise CheckpointError(f"the pickle stream has an unknown opcode at byte {self._position()}")
                handler(self)
        except pickle._Stop as stop:  # type: ignore[attr-defined]
            return stop.value

    def _position(self) -> str:
        try:
            return str(self._source.tell())
        except (AttributeError, OSError, ValueError):
            return "?"

    # opcodes that call or mutate ---------------------------------------------------------------
    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if func is self._from_bytes and func is not None:
            self.stack[-1] = func(*_tuple(args))
            return
        try:
            call = CALLS.get(func)
        except TypeError:  # an unhashable object on the stack
            call = None
        if call is None:
            raise _refuse(f"to call {_describe(func)}")
        self.stack[-1] = call(*_tuple(args))

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(_new_module(cls, args, {}))

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(_new_module(cls, args, kwargs))

    def load_inst(self) -> None:
        module = self.readline()[:-1].decode("ascii")
        name = self.readline()[:-1].decode("ascii")
        cls = self.find_class(module, name)
        self.append(_new_module(cls, tuple(self.pop_mark()), {}))

    def load_obj(self) -> None:
        args = self.pop_mark()
        cls = args.pop(0) if args else None
        self.append(_new_module(cls, tuple(args), {}))

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, nn.Module) and is_module_class(type(inst)):
            type(inst).__setstate__(inst, _plain_state(state, type(inst).__name__))
        elif type(inst) is OrderedDict:
            vars(inst).update(_plain_state(state, "an OrderedDict"))
        else:
            raise _refuse(f"to set the state of {_describe(inst)}")

    def load_append(self) -> None:
        value = self.stack.pop()
        _expect(self.stack[-1], list, "APPEND").append(value)

    def load_appends(self) -> None:
        items = self.pop_mark()
        _expect(self.stack[-1], list, "APPENDS").extend(items)

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        _expect(self.stack[-1], dict, "SETITEM")[key] = value

    def load_setitems(self) -> None:
        items = self.pop_mark()
        target = _expect(self.stack[-1], dict, "SETITEMS")
        for i in range(0, len(items) - 1, 2):
            target[items[i]] = items[i + 1]

    def load_additems(self) -> None:
        items = self.pop_mark()
        _expect(self.stack[-1], set, "ADDITEMS").update(items)

    for _opcode, _method in ((pickle.REDUCE, load_reduce), (pickle.NEWOBJ, load_newobj),
                             (pickle.NEWOBJ_EX, load_newobj_ex), (pickle.INST, load_inst), (pickle.OBJ, load_obj),
                             (pickle.BUILD, load_build), (pickle.APPEND, load_append),
                             (pickle.APPENDS, load_appends), (pickle.SETITEM, load_setitem),
                             (pickle.SETITEMS, load_setitems), (pickle.ADDITEMS, load_additems)):
        dispatch[_opcode[0]] = _method
    for _opcode in (pickle.EXT1, pickle.EXT2, pickle.EXT4, pickle.NEXT_BUFFER, pickle.READONLY_BUFFER):
        dispatch.pop(_opcode[0], None)
    del _opcode, _method


def _tuple(args: Any) -> tuple[Any, ...]:
    if not isinstance(args, tuple):
        raise _refuse("a call whose arguments are not a tuple")
    return args


def _bytes_arg(data: Any) -> bytes:
    if not isinstance(data, bytes):
        raise CheckpointError("a pickled storage did not hold bytes")
    return data


def _expect(target: Any, kind: type, opcode: str) -> Any:
    if type(target) is not kind and not (kind is dict and type(target) is OrderedDict):
        raise _refuse(f"{opcode} on {_describe(target)} (only plain lists, dicts and sets are filled)")
    return target


def _new_module(cls: Any, args: Any, kwargs: Any) -> Any:
    if not is_module_class(cls):
        raise _refuse(f"to create {_describe(cls)} (only module classes are rebuilt)")
    if args or kwargs:
        raise _refuse(f"to create {cls.__qualname__} with arguments")
    return cls.__new__(cls)


def _describe(obj: Any) -> str:
    if isinstance(obj, type):
        return safe_name(f"{obj.__module__}.{obj.__qualname__}", 120)
    name = getattr(obj, "__qualname__", None)
    module = getattr(obj, "__module__", None)
    if isinstance(name, str) and isinstance(module, str):
        return safe_name(f"{module}.{name}", 120)
    return f"an object of type {safe_name(type(obj).__name__)}"


# ----- entry points (the containers are in protoviz.models.legacy.containers) ---------------------
def load_file(path: Path, device: torch.device | str = "cpu", limits: ModelLimits = DEFAULT_LIMITS) -> Any:
    """Read any torch/pickle checkpoint file safely; tensors end on ``device``."""
    from protoviz.models.legacy.containers import read_checkpoint, read_regular_file

    data = read_regular_file(Path(path), limits.max_file_bytes)
    loaded = read_checkpoint(data, Path(path).name, limits)
    return _to_device(loaded.obj, torch.device(device))


def load_bytes(data: bytes, device: torch.device, label: str = "checkpoint",
               limits: ModelLimits = DEFAULT_LIMITS) -> Any:
    """Read checkpoint bytes in zip, legacy or plain-pickle format."""
    from protoviz.models.legacy.containers import read_checkpoint

    return _to_device(read_checkpoint(data, label, limits).obj, torch.device(device))


def _to_device(obj: Any, device: torch.device) -> Any:
    if device.type == "cpu":
        return obj
    if isinstance(obj, nn.Module | Tensor):
        return obj.to(device)
    raise CheckpointError("only modules and tensors can be moved to a device; load on the CPU instead")

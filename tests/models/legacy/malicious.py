"""Checkpoints that try to run code when loaded, in every format protoviz reads.

Each payload, if unpickled naively, creates ``sentinel`` (or calls a code-loading function); the
loader must refuse it with a CheckpointError naming the global, before anything runs.
"""

from __future__ import annotations

import builtins
import importlib
import io
import os
import pickle
import subprocess
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tests.models.legacy import writers as w


class Reduce:
    """An object whose unpickling calls ``func(*args)``."""

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...]):
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.func, self.args


def _touch(sentinel: Path) -> str:
    return f"open({str(sentinel)!r}, 'w').close()"


def payloads(sentinel: Path) -> dict[str, Callable[[], Any]]:
    """name of the refused global -> a function building the malicious object (called inside its naming context)."""
    return {
        "posix.system": lambda: Reduce(os.system, (f"touch {sentinel}",)),
        "builtins.eval": lambda: Reduce(builtins.eval, (_touch(sentinel),)),
        "builtins.exec": lambda: Reduce(builtins.exec, (_touch(sentinel),)),
        "subprocess.Popen": lambda: Reduce(subprocess.Popen, (["touch", str(sentinel)],)),
        "importlib.import_module": lambda: Reduce(importlib.import_module, ("antigravity",)),
        "torch.serialization.load": lambda: Reduce(torch.load, (str(sentinel) + ".pth",)),
        "torch.jit._serialization.load": lambda: Reduce(torch.jit.load, (str(sentinel) + ".pt",)),
        "torch.hub.load": lambda: Reduce(torch.hub.load, ("owner/repo", "model")),
        "builtins.getattr": lambda: Reduce(getattr, (torch.nn.Conv2d, "register_forward_hook")),
        "torch.jit._script.script": lambda: Reduce(torch.jit.script, ("def f(x): return x",)),
        "torch.compile": lambda: Reduce(torch.compile, (None,)),
    }


def wrap(payload: Any, where: str) -> Any:
    """The payload alone, nested in a state dict, or inside a checkpoint dict with real tensors."""
    if where == "top":
        return payload
    if where == "state_dict":
        return OrderedDict([("features.conv1.weight", torch.zeros(2, 3, 1, 1)), ("evil", payload)])
    return {"model_state_dict": OrderedDict([("proto_presence", torch.zeros(2, 3, 1)), ("x", [1, {"y": payload}])]),
            "epoch": 1}


def write(obj: Any, path: Path, fmt: str, protocol: int = 2) -> Path:
    """Write in ``zip``/``legacy`` torch format or as a plain pickle with ``protocol``."""
    if fmt == "pickle":
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
        return path
    return w.save(obj, path, fmt)


def protocol0_os_system(sentinel: Path) -> bytes:
    """A hand-written protocol-0 pickle calling ``os.system`` (the classic)."""
    return f"cos\nsystem\n(S'touch {sentinel}'\ntR.".encode()


def nested_storage_bytes(sentinel: Path) -> bytes:
    """A plain pickle whose 'storage' is loaded through torch.storage._load_from_bytes with a payload
    inside the nested legacy stream (what torch would torch.load with weights_only=False)."""
    inner = io.BytesIO()
    torch.save(Reduce(os.system, (f"touch {sentinel}",)), inner, _use_new_zipfile_serialization=False)
    return pickle.dumps(Reduce(torch.storage._load_from_bytes, (inner.getvalue(),)), protocol=2)

"""No checkpoint can run code when protoviz loads it, in any format, with no trust switch."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from protoviz.errors import CheckpointError
from protoviz.models import load_model
from protoviz.models.legacy.unpickler import load_file
from tests.models.legacy import malicious as mal
from tests.models.legacy import writers as w

FORMATS = ("zip", "legacy", "pickle")
NAMES = list(mal.payloads(Path("x")))


def _refused(path: Path, name: str, sentinel: Path) -> None:
    with pytest.raises(CheckpointError) as error:
        load_model(path)
    assert name in str(error.value), str(error.value)
    assert not sentinel.exists()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", NAMES)
def test_code_running_globals_are_refused_by_name(tmp_path: Path, fmt: str, name: str) -> None:
    sentinel = tmp_path / "pwned"
    payload = mal.payloads(sentinel)[name]()
    path = mal.write(payload, tmp_path / "evil.pth", fmt)
    _refused(path, name, sentinel)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("where", ["state_dict", "checkpoint_dict"])
def test_payloads_nested_in_state_dicts_are_refused(tmp_path: Path, fmt: str, where: str) -> None:
    sentinel = tmp_path / "pwned"
    path = mal.write(mal.wrap(mal.payloads(sentinel)["posix.system"](), where), tmp_path / "evil.pth", fmt)
    _refused(path, "posix.system", sentinel)


@pytest.mark.parametrize("fmt", FORMATS)
def test_payload_inside_a_whole_research_module_is_refused(tmp_path: Path, fmt: str) -> None:
    sentinel = tmp_path / "pwned"
    net = w.ppnet()
    net.prototype_activation_function = mal.payloads(sentinel)["builtins.exec"]()
    path = w.save(net, tmp_path / "evil.pth", fmt, w.research_classes(net))
    _refused(path, "builtins.exec", sentinel)


def test_the_os_system_spelling_and_protocol_0_are_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    path = tmp_path / "classic.pkl"
    path.write_bytes(mal.protocol0_os_system(sentinel))
    _refused(path, "protocol 0/1", sentinel)  # Python 2's text pickles are not read at all
    path.write_bytes(b"\x80\x02" + mal.protocol0_os_system(sentinel))  # the same opcodes after a protocol-2 header
    _refused(path, "os.system", sentinel)


def test_a_payload_inside_a_pickled_storage_is_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    path = tmp_path / "tree.pkl"
    path.write_bytes(mal.nested_storage_bytes(sentinel))
    _refused(path, "posix.system", sentinel)


def test_the_payloads_are_real(tmp_path: Path) -> None:
    """Control: the same bytes loaded naively do run code, so the tests above can fail."""
    sentinel = tmp_path / "pwned"
    data = pickle.dumps(mal.payloads(sentinel)["builtins.exec"](), protocol=2)
    pickle.loads(data)
    assert sentinel.exists()
    os.remove(sentinel)
    pickle.loads(mal.protocol0_os_system(sentinel))
    assert sentinel.exists()


def test_a_legitimate_file_still_loads_and_torchscript_is_refused(tmp_path: Path) -> None:
    net = w.ppnet()
    path = w.save(net, tmp_path / "ok.pth", "legacy", w.research_classes(net))
    assert load_model(path).family == "protopnet"
    script = torch.jit.script(torch.nn.Linear(2, 2))
    scripted = tmp_path / "script.pt"
    torch.jit.save(script, str(scripted))
    with pytest.raises(CheckpointError, match="TorchScript"):
        load_file(scripted)


def test_garbage_and_truncated_files_give_checkpoint_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        load_model(junk)
    net = w.ppnet()
    good = w.save(net, tmp_path / "good.pth", "zip", w.research_classes(net))
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        load_model(cut)


def test_the_allow_list_is_explicit_and_inert() -> None:
    from protoviz.models.legacy.unpickler import allowed_globals, resolve_global

    allowed = allowed_globals()
    dangerous = ("torch.jit", "torch.hub", "torch.serialization", "torch.storage", "torch._C", "torch.compile",
                 "torch.utils", "torch.ops", "torch.library", "torch.package", "os.", "posix.", "sys.", "subprocess.",
                 "importlib", "builtins.eval", "builtins.exec", "builtins.getattr", "builtins.__import__")
    assert not [name for name in allowed if name.startswith(dangerous)]
    functions = sorted(name for name, obj in allowed.items() if callable(obj) and not isinstance(obj, type))
    assert functions == sorted(["_codecs.encode", "torch._utils._rebuild_parameter",
                                "torch._utils._rebuild_parameter_with_state", "torch._utils._rebuild_tensor",
                                "torch._utils._rebuild_tensor_v2", "torch.nn.backends.thnn._get_thnn_function_backend"])
    assert resolve_global("__builtin__", "set") is set  # protocol-2 spelling
    for module, name in (("torch", "load"), ("torch.nn", "Module"), ("model.PPNet", "__reduce__.x"), ("os", "system")):
        with pytest.raises(CheckpointError, match="refused"):
            resolve_global(module, name)


def test_a_pre_1_4_module_backend_global_is_accepted(tmp_path: Path) -> None:
    """Modules pickled by PyTorch <= 1.3 carry ``_backend`` = torch.nn.backends.thnn._get_thnn_function_backend()."""
    from torch.nn.backends import thnn

    net = w.ppnet()
    for module in net.modules():
        module._backend = mal.Reduce(thnn._get_thnn_function_backend, ())
    path = w.save(net, tmp_path / "old.pth", "legacy", w.research_classes(net))
    assert load_model(path).family == "protopnet"

"""Write research-format checkpoints from CUDA tensors.

``python -m tests.models.legacy.make_cuda_fixtures OUT_DIR [NAME ...]`` writes the files that
test_legacy_devices.py loads on whatever device the tests run on (all of them, or the NAMEs given); the
same writers with the same seeds on the CPU give the expected weights.

On a GPU the modules are moved with ``.cuda()``. Without one, ``--tag-cuda`` writes the same bytes:
``torch.save`` records each storage's device only through ``torch.serialization.location_tag``, and a
``.cuda()`` run tags the module's parameters and buffers ``cuda:0`` while plain tensor attributes (e.g.
``prototype_class_identity``) stay ``cpu``; the patched tag does exactly that. Checked against GPU-written
files: the zip files are identical but for ``.data/serialization_id`` (random in every save), the legacy
ones but for the storage keys (memory addresses).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn, serialization

from tests.models.legacy import writers as w


@contextmanager
def cuda_tags(modules: list[nn.Module]) -> Iterator[None]:
    """While saving, tag the storages of ``modules``' parameters and buffers ``cuda:0`` (as after .cuda())."""
    real = serialization.location_tag
    pointers = {t.untyped_storage().data_ptr() for m in modules for t in [*m.parameters(), *m.buffers()]}

    def tag(storage: Any) -> str:
        untyped = storage.untyped_storage() if hasattr(storage, "untyped_storage") else storage
        return "cuda:" + str(0) if untyped.data_ptr() in pointers else real(storage)  # a new string, as torch's

    serialization.location_tag = tag
    try:
        yield
    finally:
        serialization.location_tag = real


def fixtures(device: Callable[[nn.Module], nn.Module]) -> dict[str, tuple[Any, list[nn.Module], str, list[type]]]:
    """name -> (object to save, its modules, format, research classes)."""
    net, tree, pip = device(w.ppnet()), device(w.prototree()), device(w.pipnet())
    return {
        "ppnet_cuda_zip.pth": (net, [net], "zip", w.research_classes(net)),
        "ppnet_cuda_legacy.pth": (net, [net], "legacy", w.research_classes(net)),
        "prototree_cuda_model.pth": (tree, [tree], "zip", w.research_classes(tree)),
        "prototree_cuda_tree.pkl": (tree, [tree], "pickle", w.research_classes(tree)),
        "pipnet_cuda.pth": (w.pipnet_checkpoint(pip), [pip], "zip", []),
    }


def main(out: Path, names: list[str], tag_cuda: bool) -> None:
    if not tag_cuda and not torch.cuda.is_available():
        raise SystemExit("needs CUDA, or --tag-cuda")
    out.mkdir(parents=True, exist_ok=True)
    for name, (obj, modules, fmt, classes) in fixtures((lambda m: m) if tag_cuda else (lambda m: m.cuda())).items():
        if names and name not in names:
            continue
        if tag_cuda:
            with cuda_tags(modules):
                w.save(obj, out / name, fmt, classes)
        else:
            w.save(obj, out / name, fmt, classes)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    tag = "--tag-cuda" in arguments
    arguments = [a for a in arguments if a != "--tag-cuda"]
    main(Path(arguments[0]), arguments[1:], tag)

"""Loads from several threads at once always succeed (no process-wide allow-list to race on)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from protoviz.models import load_model
from protoviz.models.checkpoint import save_model
from tests.conftest import make_tiny_model
from tests.models.legacy import writers as w

THREADS, LOADS = 4, 30


def _files(tmp_path: Path) -> list[tuple[Path, str | None]]:
    net = w.ppnet()
    tree = w.prototree()
    return [
        (w.save(net, tmp_path / "ppnet_zip.pth", "zip", w.research_classes(net)), None),
        (w.save(net, tmp_path / "ppnet_legacy.pth", "legacy", w.research_classes(net)), None),
        (w.save(w.ppnet().state_dict(), tmp_path / "state.pth", "zip"), "tesnet"),
        (w.save_prototree_folder(tree, tmp_path / "tree") / "tree.pkl", None),
        (save_model(make_tiny_model(), tmp_path / "native.safetensors"), None),
    ]


def test_concurrent_loads_all_succeed(tmp_path: Path) -> None:
    files = _files(tmp_path)
    expected = {path: load_model(path, family=hint).family for path, hint in files}

    def worker(thread: int) -> list[str]:
        problems = []
        for i in range(LOADS):
            path, hint = files[(thread + i) % len(files)]
            try:
                model = load_model(path, family=hint)
                if model.family != expected[path] or not torch.isfinite(model.class_weights).all():
                    problems.append(f"{path.name}: wrong model")
            except Exception as error:  # noqa: BLE001 - every failure is reported, none may happen
                problems.append(f"{path.name}: {type(error).__name__}: {error}")
        return problems

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))
    failures = [p for r in results for p in r]
    print(f"{THREADS} threads x {LOADS} loads: {THREADS * LOADS - len(failures)} succeeded, {len(failures)} failed")
    assert not failures, failures[:5]

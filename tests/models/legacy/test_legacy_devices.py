"""Checkpoints saved from CUDA tensors (data/*_cuda*, written by make_cuda_fixtures.py on a GPU)
load on the requested device, CPU included, and equal the CPU-written model of the same seed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from protoviz.models import load_model
from tests.models.legacy import writers as w
from tests.models.legacy.cases import CASES, images

DATA = Path(__file__).parent / "data"
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _same_outputs(a, b) -> None:
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(a(x.to(a.device)).logits.cpu(), b(x).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["ppnet_cuda_zip.pth", "ppnet_cuda_legacy.pth"])
def test_cuda_saved_protopnet_loads_anywhere(tmp_path: Path, name: str) -> None:
    model = load_model(DATA / name, device=DEVICE)
    assert model.device.type == DEVICE
    net = w.ppnet()
    _same_outputs(model, load_model(w.save(net, tmp_path / "cpu.pth", "zip", w.research_classes(net))))


@pytest.mark.parametrize("name", ["prototree_cuda_model.pth", "prototree_cuda_tree.pkl"])
def test_cuda_saved_prototree_loads_anywhere(tmp_path: Path, name: str) -> None:
    model = load_model(DATA / name, device=DEVICE)
    assert model.device.type == DEVICE and model.family == "prototree"
    _same_outputs(model, load_model(w.save_prototree_folder(w.prototree(), tmp_path / "run")))


def test_cuda_saved_pipnet_loads_anywhere(tmp_path: Path) -> None:
    model = load_model(DATA / "pipnet_cuda.pth", device=DEVICE)
    assert model.device.type == DEVICE
    _same_outputs(model, load_model(w.save(w.pipnet_checkpoint(w.pipnet()), tmp_path / "p.pth", "zip")))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_family_runs_on_cuda_like_on_cpu(case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # compare float32 with float32
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    path, _ = case.write(tmp_path)
    hints = dict(case.hints)
    cpu, gpu = load_model(path, family=case.hint, **hints), load_model(path, family=case.hint, device="cuda", **hints)
    x = images(case)
    with torch.no_grad():
        a, b = cpu(x), gpu(x.cuda())
    torch.testing.assert_close(b.logits.cpu(), a.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b.similarity_maps.cpu(), a.similarity_maps, rtol=1e-4, atol=1e-4)

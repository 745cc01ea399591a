"""`protoviz info` and `protoviz convert` on research checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch

from protoviz.cli import main
from protoviz.models import load_model
from tests.models.legacy import writers as w


def test_info_describes_a_research_checkpoint(tmp_path: Path, capsys) -> None:
    folder = w.save_prototree_folder(w.prototree(), tmp_path / "run")
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "prototree" in out and "probs" in out and "14x14" in out


def test_convert_writes_an_equivalent_native_file(tmp_path: Path, capsys) -> None:
    net = w.ppnet("tesnet")
    source = w.save(net, tmp_path / "tes.pth", "legacy", w.research_classes(net))
    target = tmp_path / "tes.safetensors"
    assert main(["convert", str(source), str(target), "--class-names", "cat,dog,owl"]) == 0
    assert "tesnet" in capsys.readouterr().out
    a, b = load_model(source), load_model(target)
    assert b.class_names == ("cat", "dog", "owl") and b.metadata["converted_from"] == str(source)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(a(x).logits, b(x).logits)


def test_convert_refuses_bad_requests_with_a_message(tmp_path: Path, capsys) -> None:
    state = w.save(w.ppnet().state_dict(), tmp_path / "state.pth", "zip")
    assert main(["convert", str(state), str(tmp_path / "x.safetensors")]) == 2
    assert "family hint" in capsys.readouterr().err
    assert main(["convert", str(state), str(tmp_path / "x.pth"), "--family", "protopnet"]) == 2
    assert ".safetensors" in capsys.readouterr().err
    assert main(["convert", str(state), str(tmp_path / "y.safetensors"), "--family", "protopnet"]) == 0
    assert main(["convert", str(state), str(tmp_path / "y.safetensors"), "--family", "protopnet"]) == 2
    assert "--force" in capsys.readouterr().err

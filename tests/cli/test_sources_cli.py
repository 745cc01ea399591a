"""`protoviz convert --push-dir --data --classes` and `protoviz project --data`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from protoviz.cli import main
from protoviz.models import load_model
from protoviz.models.checkpoint import save_model
from tests.conftest import make_tiny_model
from tests.sources import pushwriters as W
from tests.sources.conftest import folder_tensors, lively, make_image_folder, single_thread  # noqa: F401


def _push_run(tmp_path: Path) -> tuple[Path, Path, Path, W.Pushed]:
    """A native checkpoint named like ProtoPNet's (epoch 5), its push folder and its push images."""
    model = lively(make_tiny_model(classes=3, per_class=2, seed=1))
    data = make_image_folder(tmp_path / "train_cropped", classes=("001.Black_footed_Albatross", "002.Laysan_Albatross",
                                                                  "003.Sooty_Albatross"), seed=2)
    unit, _x, labels, _files = folder_tensors(data, model)
    cls = model.prototype_class_identity.argmax(dim=1).numpy()
    for epoch in (5, 9):
        pushed, vectors = W.protopnet_push(unit, labels, W.protopnet_forward(model), W.log_activation, cls,
                                           tmp_path / "run" / "img", epoch, W.tiny_cnn_field(64), batch_size=5)
        with torch.no_grad():
            model.prototype_vectors.copy_(torch.from_numpy(vectors)[:, :, None, None])
        if epoch == 5:
            checkpoint = save_model(model, tmp_path / "run" / "5push0.9100.safetensors")
            first = pushed
    return checkpoint, tmp_path / "run", data, first


def test_convert_imports_the_push_folder_with_class_names(tmp_path: Path, capsys) -> None:
    checkpoint, run, data, pushed = _push_run(tmp_path)
    out = tmp_path / "converted.safetensors"
    assert main(["convert", str(checkpoint), str(out), "--push-dir", str(run), "--data", str(data),
                 "--batch-size", "4", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "(epoch 5)" in printed and "6 prototypes with a source" in printed
    model = load_model(out)
    assert model.class_names == ("Black footed Albatross", "Laysan Albatross", "Sooty Albatross")  # from --data
    sources = model.prototype_sources
    assert [tuple(s.push_box) for s in sources] == [tuple(b) for b in pushed.box]  # type: ignore[union-attr]
    assert all(s is not None and s.origin == "push-folder" for s in sources)
    assert model.metadata["prototype_sources_from"]["epoch"] == 5
    (tmp_path / "classes.txt").write_text("1 001.Albatross_A\n2 002.Albatross_B\n3 003.Albatross_C\n")
    assert main(["convert", str(checkpoint), str(out), "--push-dir", str(run), "--data", str(data), "--push-epoch", "9",
                 "--classes", str(tmp_path / "classes.txt"), "--force"]) == 0
    renamed = load_model(out)
    assert renamed.class_names == ("Albatross A", "Albatross B", "Albatross C")
    assert renamed.metadata["prototype_sources_from"]["epoch"] == 9


def test_project_finds_the_pushed_patches(tmp_path: Path, capsys) -> None:
    checkpoint, _run, data, _pushed = _push_run(tmp_path)
    out = tmp_path / "projected.safetensors"
    assert main(["project", str(checkpoint), str(out), "--data", str(data), "--batch-size", "3"]) == 0
    printed = capsys.readouterr().out
    assert "6/6 prototypes with a source among 12 images" in printed
    projected = load_model(out)
    assert all(s is not None and s.origin == "projection" for s in projected.prototype_sources)
    assert np.allclose([s.distance for s in projected.prototype_sources], 0, atol=1e-5)  # type: ignore[union-attr]
    assert torch.equal(projected.prototype_vectors, load_model(checkpoint).prototype_vectors)
    names = tmp_path / "names.txt"
    names.write_text("albatross\nlaysan\nsooty\n")
    assert main(["project", str(checkpoint), str(out), "--data", str(data), "--classes", str(names), "--force"]) == 0
    assert load_model(out).class_names == ("albatross", "laysan", "sooty")


def test_bad_requests_give_messages(tmp_path: Path, capsys) -> None:
    checkpoint, run, data, _pushed = _push_run(tmp_path)
    out = str(tmp_path / "x.safetensors")
    assert main(["convert", str(checkpoint), out, "--push-dir", str(run)]) == 2
    assert "needs --data" in capsys.readouterr().err
    assert main(["convert", str(checkpoint), out, "--classes", str(data), "--class-names", "a,b,c"]) == 2
    assert "not both" in capsys.readouterr().err
    (tmp_path / "two.txt").write_text("a\nb\n")
    assert main(["project", str(checkpoint), out, "--data", str(data), "--classes", str(tmp_path / "two.txt")]) == 2
    assert "gives 2 class names, but the model has 3" in capsys.readouterr().err
    assert main(["project", str(checkpoint), out, "--data", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err

"""`protoviz info` and `protoviz synth` end to end, and errors reported without tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protoviz.cli import main


def test_info_json_has_real_numbers(tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tiny_checkpoint), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == "protopnet" and info["family_label"] == "ProtoPNet"
    assert info["num_prototypes"] == 6 and info["map_size"] == [4, 4] and info["input_size"] == [64, 64]
    assert isinstance(info["num_parameters"], int) and info["num_parameters"] > 1000
    assert info["classes"] == ["class_0", "class_1", "class_2"] and info["prototype_sets"] == {"prototypes": [0, 6]}
    assert info["sources"] == {"known": 0, "total": 6} and info["accuracy"] == {}
    assert len(info["checkpoint_sha256"]) == 64 and "9.21" in info["similarity_unit"]


def test_info_shows_classes_sources_training_and_accuracy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from protoviz.models.checkpoint import save_model
    from tests.app.conftest import with_sources

    model = with_sources(1, "cosine", ("support", "trivial"))
    model.metadata.update({"test_accuracy": 0.975, "test_images": 200, "train_seconds": 12.5, "train_device": "cpu",
                           "train_config": {"pretrain_epochs": 3, "joint_epochs": 4}, "seed": 7,
                           "history": ["epoch 0", "epoch 1: acc 0.9"]})
    path = save_model(model, tmp_path / "st.safetensors")
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    for expected in ("ST-ProtoPNet (protoviz family 'protopnet')", "support [0:6), trivial [6:12)",
                     "classes (3)        class_0, class_1, class_2", "prototype sources  12 of 12 known",
                     "accuracy           test 97.5% (200 test images)", "training time      12 s on cpu",
                     "epochs             pretrain 3, joint 4", "history            2 lines; last: epoch 1: acc 0.9"):
        assert expected in text, (expected, text)
    assert main(["info", str(path), "--json", "--sources"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["accuracy"] == {"test_accuracy": 0.975, "test_images": 200}
    assert info["training"]["train_config"]["joint_epochs"] == 4 and info["training"]["seed"] == 7
    assert info["sources"]["prototypes"][3] == {"prototype": 3, "image_id": "train/3.png", "box": [8, 24, 16, 40],
                                                "map_location": [1, 2], "class_index": 1}


def test_info_on_a_bad_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 3)
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("protoviz info: error:") and "Traceback" not in err


def test_synth_writes_a_cub_layout(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    assert main(["synth", str(out), "--train", "1", "--test", "1", "--size", "64"]) == 0
    lines = (out / "images.txt").read_text().splitlines()
    assert len(lines) == len((out / "classes.txt").read_text().splitlines()) * 2
    assert (out / "parts" / "part_locs.txt").exists() and (out / "class_rules.json").exists()


def _option(command: str, flag: str):
    import argparse

    from protoviz.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return next(a for a in sub._actions if flag in a.option_strings)


def test_help_texts_say_what_the_flags_do() -> None:
    no_crop = _option("evaluate", "--no-crop")
    assert no_crop.dest == "crop" and no_crop.default is True and no_crop.const is False  # the flag stops cropping
    assert no_crop.help.startswith("use the whole image") and "instead of cropping" in no_crop.help
    profile = _option("compare", "--profile")
    assert profile.default == "parts" and list(profile.choices) == ["parts", "map", "max"]

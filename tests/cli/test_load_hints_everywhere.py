"""Every command that loads a checkpoint takes the load hints (--slots, --activation, --backbone) and
hands them, with its --family, to load_model: a ProtoPool's slot mode or a state dict's activation can be
chosen wherever the file is read, not only by convert/info."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from protoviz.cli import COMMANDS, build_parser
from protoviz.cli.load_options import load_checkpoint

HINTS = ["--slots", "hard", "--activation", "linear", "--backbone", "convnext_tiny_13"]
# command -> its arguments besides the hints (the checkpoint first); commands that read no checkpoint are absent
LOADING = {
    "info": ["m.pth"],
    "cards": ["m.pth", "img.png", "--out", "out"],
    "compare": ["a.pth", "b.pth"],
    "explain": ["m.pth"],
    "evaluate": ["m.pth", "--data", "synthetic"],
    "trust": ["m.pth"],
    "convert": ["m.pth", "m.safetensors"],
    "project": ["m.pth", "m.safetensors", "--data", "train"],
}


def test_every_loading_command_is_listed() -> None:
    assert set(LOADING) == set(COMMANDS) - {"synth", "train"}


@pytest.mark.parametrize("command", sorted(LOADING))
def test_the_command_accepts_the_hints(command: str) -> None:
    args = build_parser(command).parse_args([command, *LOADING[command], *HINTS])
    assert (args.slots, args.activation, args.backbone) == ("hard", "linear", "convnext_tiny_13")


def test_hints_left_out_stay_unset() -> None:
    args = build_parser("evaluate").parse_args(["evaluate", "m.pth", "--data", "synthetic"])
    assert (args.slots, args.activation, args.backbone) == (None, None, None)


def test_load_checkpoint_passes_family_and_the_given_hints(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_load(path: Path, **kwargs: Any) -> str:
        seen.update(path=path, **kwargs)
        return "model"

    monkeypatch.setattr("protoviz.models.load_model", fake_load)
    args = argparse.Namespace(family="protopool", slots="soft", activation=None, backbone=None)
    assert load_checkpoint(Path("m.pth"), args, "cpu") == "model"
    assert seen == {"path": Path("m.pth"), "family": "protopool", "device": "cpu", "slots": "soft"}
    seen.clear()
    load_checkpoint(Path("n.pth"), argparse.Namespace(), None)  # a command without --family or hints
    assert seen == {"path": Path("n.pth"), "family": None, "device": None}

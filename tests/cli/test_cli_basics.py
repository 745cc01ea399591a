"""`protoviz info` and `protoviz synth` end to end, and errors reported without tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protoviz.cli import main


def test_info_prints_the_summary(tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tiny_checkpoint), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["family"] == "protopnet" and info["prototypes (P)"] == "6" and info["similarity map"] == "4x4"


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

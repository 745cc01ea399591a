"""`protoviz trust`: the Trust page's checks from the command line, on the synthetic set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protoviz.cli import main
from protoviz.models.checkpoint import save_model
from tests.conftest import make_tiny_model


def test_trust_command_prints_the_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = save_model(make_tiny_model(classes=8, per_class=1), tmp_path / "tiny.safetensors")
    out = tmp_path / "trust.json"
    status = main(["trust", str(checkpoint), "--images", "2", "--prototypes", "1", "--methods", "upsample",
                   "random", "--stages", "1", "--steps", "4", "--device", "cpu", "--out", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "randomisation check" in printed and "FAIL" in printed  # the random baseline fails
    report = json.loads(out.read_text())
    assert [row["method"] for row in report["summary"]] == ["upsample", "random"]
    assert report["provenance"]["config"]["randomisation"]["stages"] == 1
    assert len(report["methods"]["upsample"]["relevance"]["part_share"]) == 2


def test_trust_command_reports_a_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trust", str(tmp_path / "nope.safetensors")]) == 2
    assert "no such file" in capsys.readouterr().err

"""`protoviz evaluate --as published|clean` (EvalProtoPNet's data path or the in-memory one), its default,
the line saying which path ran and why the other differs; `protoviz explain --region --prototypes`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from protoviz.cli import main
from protoviz.data.datasets import open_dataset
from protoviz.data.published import dataset_for_path
from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.metrics.runner import EvaluationConfig, evaluate
from protoviz.models import load_model
from protoviz.models.checkpoint import save_model
from tests.conftest import make_tiny_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("as")
    data = generate_dataset(folder / "syn", SyntheticConfig(image_size=64, n_train_per_class=0, n_test_per_class=2))
    return data, save_model(make_tiny_model(classes=8, per_class=2, seed=5), folder / "tiny.safetensors")


def _evaluate(checkpoint: Path, data: Path, out: Path, *extra: str) -> dict:
    assert main(["evaluate", str(checkpoint), "--data", str(data), "--metrics", "consistency,stability",
                 "--device", "cpu", "--quiet", "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())["results"][0]


@pytest.mark.parametrize("path", ["published", "clean"])
def test_each_path_equals_the_library_on_that_path(setup: tuple[Path, Path], tmp_path: Path, path: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data, checkpoint = setup
    written = _evaluate(checkpoint, data, tmp_path / "out.json", "--as", path)
    printed = capsys.readouterr().out
    assert f"data path: {'as published (EvalProtoPNet)' if path == 'published' else 'clean (in memory)'}" in printed
    assert "EvalProtoPNet evaluates crops written as JPEG" in printed and "the default here" not in printed
    expected = evaluate(load_model(checkpoint), dataset_for_path(open_dataset(data), path),
                        EvaluationConfig(metrics=("consistency", "stability")))
    assert written["scores"]["consistency"]["value"] == expected.scores["consistency"]
    assert written["scores"]["stability"]["value"] == expected.scores["stability"]
    assert written["provenance"]["dataset"]["path"] == path


def test_the_default_is_the_papers_path_on_a_cub_folder_and_clean_otherwise(setup: tuple[Path, Path], tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    data, checkpoint = setup
    default = _evaluate(checkpoint, data, tmp_path / "default.json")
    assert default["provenance"]["dataset"]["path"] == "published"
    assert "as published (EvalProtoPNet), the default here" in capsys.readouterr().out
    published = _evaluate(checkpoint, data, tmp_path / "published.json", "--as", "published")
    assert default["scores"] == published["scores"]
    uncropped = _evaluate(checkpoint, data, tmp_path / "whole.json", "--no-crop")
    assert uncropped["provenance"]["dataset"]["path"] == "clean"
    with pytest.raises(SystemExit):
        main(["evaluate", str(checkpoint), "--data", str(data), "--as", "jpeg"])
    assert "invalid choice: 'jpeg'" in capsys.readouterr().err


def test_evaluate_help_documents_as(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--as {clean,published}" in text and "EvalProtoPNet" in text


def test_explain_honours_the_region_over_a_dataset(setup: tuple[Path, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    data, checkpoint = setup
    out = tmp_path / "inside"
    assert main(["explain", str(checkpoint), "--data", str(data), "--out", str(out), "--quiet", "--device", "cpu",
                 "--limit", "3", "--region", "inside", "--prototypes", "2,7"]) == 0
    assert "region inside" in capsys.readouterr().out
    table = pd.read_csv(out / "characteristics.csv")
    assert set(table["prototype"]) == {2, 7} and table["importance"].notna().any()
    assert sorted(table[table["prototype"] == 2]["rank"]) == list(range(1, len(table) // 2 + 1))
    doc = json.loads((out / "characteristics.json").read_text())
    assert [bool(p["ranking"]) for p in doc["prototypes"]] == [j in (2, 7) for j in range(len(doc["prototypes"]))]
    assert doc["config"]["region"] == "inside" and doc["modifications"]["region"] == "inside"
    assert main(["explain", str(checkpoint), "--data", str(data), "--out", str(out), "--prototypes", "two"]) == 2

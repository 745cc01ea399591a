"""Comparison summary, HTML report and the `protoviz compare` command on tiny models and data."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from protoviz.cli import main
from protoviz.compare.latent import latent_view
from protoviz.compare.report import HtmlReport, comparison_report
from protoviz.compare.summary import CompareConfig, compare_models, probe_indices, scores_table
from protoviz.compare.topk import TopKConfig
from protoviz.data.datasets import open_dataset
from protoviz.heatmaps import explain_image
from protoviz.models import load_model
from protoviz.models.checkpoint import save_model
from tests.conftest import make_tiny_model


class _Links(HTMLParser):
    """Every src/href attribute of the document's tags (script bodies are not parsed as tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value or "" for name, value in attrs if name in ("src", "href")]


def _external_links(text: str) -> list[str]:
    """Links that would fetch something from elsewhere (http, https or protocol-relative)."""
    parser = _Links()
    parser.feed(text)
    return [link for link in parser.links if re.match(r"\s*(https?:)?//", link, flags=re.IGNORECASE)]


def test_report_is_self_contained_and_records_the_hashes(tiny_dataset: Path, two_checkpoints: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    models = {p.stem: load_model(p) for p in two_checkpoints}
    dataset = open_dataset(tiny_dataset, split="test")
    config = CompareConfig(topk=TopKConfig(k=3, thumbnail_size=16), max_images=10, batch_size=4)
    comparison = compare_models(models, dataset, config)
    assert [run.num_images for run in comparison.runs] == [10, 10]
    assert comparison.indices == probe_indices(len(dataset), 10, 0)
    assert set(comparison.matchings) == {(0, 1)}
    views = {run.name: latent_view(models[run.name], run.topk) for run in comparison.runs}
    explanations = {name: explain_image(model, [dataset[0].image], top_k=3, names=["probe"])
                    for name, model in models.items()}
    names = {name: list(model.class_names) for name, model in models.items()}
    path = comparison_report(comparison, names, views, explanations).save(tmp_path / "report.html")
    text = path.read_text(encoding="utf-8")
    assert _external_links(text) == []
    assert _external_links('<p><img src="https://example.org/x.png"><script src="//cdn.x/y.js"></script></p>') == [
        "https://example.org/x.png", "//cdn.x/y.js"]
    assert text.count("<script") >= 1 and text.count("data:image/png;base64,") >= 2
    assert text.count("Plotly.newPlot") >= 3
    for model in models.values():
        assert model.metadata["checkpoint_sha256"] in text
    assert 'id="reproducibility"' in text and "torchvision" in text


def test_report_escapes_text() -> None:
    report = HtmlReport("<b>title</b>")
    report.table([{"model": "<script>x</script>", "accuracy": 0.5}])
    text = report.render()
    assert "<script>x</script>" not in text and "&lt;script&gt;" in text and "0.5000" in text


def test_scores_table_lists_each_model(tiny_dataset: Path, two_checkpoints: tuple[Path, Path]) -> None:
    models = {p.stem: load_model(p) for p in two_checkpoints}
    comparison = compare_models(models, open_dataset(tiny_dataset), CompareConfig(batch_size=8))
    rows = scores_table(comparison.runs, {"first": {"consistency (%)": 25.0}})
    assert [r["model"] for r in rows] == ["first", "second"]
    assert all(0.0 <= r["accuracy (%)"] <= 100.0 and r["images"] == 16 for r in rows)  # percent, as evaluate
    assert rows[0]["consistency (%)"] == 25.0 and "consistency (%)" not in rows[1]
    assert comparison.runs[0].settings["labels"] == "class names differ; matched by index"
    provenance = comparison.runs[0].provenance
    assert provenance is not None and provenance.images == 16 and provenance.dataset.fingerprint is not None
    assert comparison.record["runs"]["first"]["model_sha256"] == provenance.model_sha256


def test_unmatchable_classes_give_no_accuracy(tiny_dataset: Path, tmp_path: Path) -> None:
    three_classes = load_model(save_model(make_tiny_model(), tmp_path / "three.safetensors"))
    comparison = compare_models({"three": three_classes}, open_dataset(tiny_dataset), CompareConfig(batch_size=8))
    run = comparison.runs[0]
    assert run.accuracy is None and run.settings["labels"].startswith("no accuracy")
    assert run.topk.num_images == 16 and comparison.matchings == {}


def test_cli_compare_writes_report_and_json(tiny_dataset: Path, two_checkpoints: tuple[Path, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out, data = tmp_path / "out.html", tmp_path / "out.json"
    picture = tmp_path / "bird.png"
    open_dataset(tiny_dataset)[0].image.save(picture)
    argv = ["compare", *map(str, two_checkpoints), "--data", str(tiny_dataset), "--report", str(out),
            "--images", str(picture),
            "--json", str(data), "--k", "2", "--max-images", "8", "--batch-size", "4", "--device", "cpu"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "first vs second" in printed and "matched pairs" in printed
    result = json.loads(data.read_text())
    assert [row["model"] for row in result["scores"]] == ["first", "second"]
    assert len(result["top_k"]["first"]["images"]) == 8 and len(result["top_k"]["first"]["images"][0]) == 2
    assert result["record"]["parameters"]["probe_images"] == 8
    text = out.read_text()
    assert _external_links(text) == [] and "bird.png: predicted" in text


def test_cli_compare_needs_two_models(two_checkpoints: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(two_checkpoints[0])]) == 2
    assert "at least two checkpoints" in capsys.readouterr().err


def test_compare_accuracy_is_the_accuracy_metric_in_percent(tiny_dataset: Path,
                                                            two_checkpoints: tuple[Path, Path]) -> None:
    from protoviz.metrics.runner import EvaluationConfig, evaluate

    model, dataset = load_model(two_checkpoints[0]), open_dataset(tiny_dataset)
    comparison = compare_models({"first": model}, dataset, CompareConfig(batch_size=8, max_images=10))
    result = evaluate(model, dataset, EvaluationConfig(metrics=("accuracy",)), indices=comparison.indices)
    assert comparison.runs[0].accuracy == result.scores["accuracy"] and result.units["accuracy"] == "%"


def test_report_escapes_hostile_model_and_class_names(tiny_dataset: Path, two_checkpoints: tuple[Path, Path]) -> None:
    """Names from files (model names, class names) reach the HTML escaped: in headings, tables, captions and
    in the plotly figures' JSON (a "</script>" there would end the script)."""
    from protoviz.data.classnames import with_class_names

    hostile = "</script><script>alert(1)</script>"
    first, second = (load_model(p) for p in two_checkpoints)
    names = [hostile, "<img src=x onerror=alert(2)>", *first.class_names[2:]]
    models = {"<b>first</b>": with_class_names(first, names), hostile: second}
    dataset = open_dataset(tiny_dataset, split="test")
    comparison = compare_models(models, dataset, CompareConfig(topk=TopKConfig(k=2, thumbnail_size=8),
                                                               max_images=6, batch_size=3))
    views = {run.name: latent_view(models[run.name], run.topk) for run in comparison.runs}
    explanations = {name: explain_image(model, [dataset[0].image], top_k=2, names=[hostile])
                    for name, model in models.items()}
    text = comparison_report(comparison, {n: list(m.class_names) for n, m in models.items()}, views,
                             explanations).render()
    assert "<script>alert" not in text and "<img src=x" not in text and "<b>first</b>" not in text
    assert "&lt;b&gt;first&lt;/b&gt;" in text and text.count("Plotly.newPlot") >= 3
    assert text.count("alert(1)") >= 3 and "alert(2)" in text  # the names are there, escaped

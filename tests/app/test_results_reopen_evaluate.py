"""The Results page re-opens evaluation and global-explanation runs: their scores tables with units."""

from __future__ import annotations

from pathlib import Path

from protoviz.data.datasets import open_dataset
from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.explain import ExplainConfig, explain_dataset
from protoviz.metrics.runner import EvaluationConfig, evaluate
from protoviz.workspace import Workspace
from tests.app.conftest import OWNER, VIEWS, app_test
from tests.conftest import make_tiny_model


def test_results_page_reopens_evaluations_and_global_explanations(app_env: None, tmp_path: Path) -> None:
    root = generate_dataset(tmp_path / "syn", SyntheticConfig(image_size=48, n_train_per_class=0, n_test_per_class=1))
    dataset = open_dataset(root)
    model = make_tiny_model(classes=8, per_class=1).eval()
    model.metadata["checkpoint_sha256"] = "c" * 64
    ws = Workspace(owner=OWNER)
    evaluation = evaluate(model, dataset, EvaluationConfig(metrics=("accuracy", "consistency", "purity"), batch_size=4))
    first = ws.save_run(evaluation.key, evaluation, model_name="tiny", dataset_name="synthetic · test · clean")
    explanation = explain_dataset(model, dataset, ExplainConfig(floors=True), batch_size=4)
    second = ws.save_run(explanation.run.key, explanation, model_name="tiny", dataset_name="synthetic · test · clean")
    assert first.result_type == "evaluation" and second.result_type == "global_explanation"

    at = app_test(VIEWS / "results.py")
    at.run()
    at.selectbox(key="results.open").set_value(first.id).run()
    assert not at.exception
    scores = next(d.value for d in at.dataframe if "unit" in d.value.columns and "score" in d.value.columns)
    units = dict(zip(scores["score"], scores["unit"]))
    assert units == {"accuracy": "%", "balanced_accuracy": "%", "consistency": "%", "purity": "fraction"}
    assert dict(zip(scores["score"], scores["value"]))["consistency"] == evaluation.scores["consistency"]
    at.selectbox(key="results.open").set_value(second.id).run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "mean_importance" in d.value.columns)
    assert list(table["characteristic"]) == list(ExplainConfig().names) and set(table["unit"]) == {"Δ similarity"}
    assert {d.proto.label for d in at.get("download_button")} >= {"CSV: scores", "CSV: importance", "CSV: summary"}

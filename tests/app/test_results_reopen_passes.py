"""The Results page re-opens what the Prototypes, Compare and Trust pages keep: a model's pass (scores,
near-duplicates, top-k table) and a trust report (summary, per-pair table), with their CSV exports."""

from __future__ import annotations

import torch

from protoviz.compare.scan import tensor_batches
from protoviz.compare.summary import CompareConfig, scan_model
from protoviz.heatmaps.trust import PerturbationConfig, RandomisationConfig
from protoviz.heatmaps.trust_report import TrustConfig, evaluate_methods, top_prototypes
from protoviz.workspace import RunKey, Workspace
from tests.app.conftest import OWNER, VIEWS, app_test
from tests.conftest import make_tiny_model


def test_the_results_page_reopens_passes_and_trust_reports(app_env: None) -> None:
    model = make_tiny_model()
    images = torch.randn(6, 3, 64, 64)
    run = scan_model("tiny", model, tensor_batches(images, 3, labels=torch.tensor([0, 1, 2] * 2)), CompareConfig(),
                     total=6, label_map=torch.arange(3))
    assert run is not None
    report = evaluate_methods(model, images[:2], top_prototypes(model, images[:2], 1),
                              TrustConfig(methods=("upsample",), randomisation=RandomisationConfig(stages=1),
                                          perturbation=PerturbationConfig(steps=2)))
    ws = Workspace(owner=OWNER)
    kept = ws.save_run(RunKey.make("compare", "a" * 64, "f" * 64, {"k": 5}), run, model_name="tiny",
                       dataset_name="six images")
    trust = ws.save_run(RunKey.make("trust", "a" * 64, "e" * 64, {"methods": ["upsample"]}), report,
                        model_name="tiny", dataset_name="two images")
    at = app_test(VIEWS / "results.py").run()
    assert not at.exception
    at.selectbox(key="results.open").set_value(kept.id).run()
    assert not at.exception
    tables = {tuple(d.value.columns) for d in at.dataframe}
    assert ("model", "accuracy (%)", "images", "prototypes", "near-duplicate pairs", "prototypes in duplicates",
            "sha256") in tables
    topk = next(d.value for d in at.dataframe if "dataset_index" in d.value.columns)
    assert len(topk) == 6 * 5 and set(topk["rank"]) == {1, 2, 3, 4, 5}
    labels = {d.proto.label for d in at.get("download_button")}
    assert {"JSON", "CSV: scores", "CSV: topk", "CSV: duplicates"} <= labels
    at.selectbox(key="results.open").set_value(trust.id).run()
    summary = next(d.value for d in at.dataframe if "randomisation check" in d.value.columns)
    assert list(summary["method"]) == ["upsample"]
    assert len(next(d.value for d in at.dataframe if "rho" in d.value.columns)) == 2  # (image, prototype) pairs
    assert {"CSV: scores", "CSV: pairs"} <= {d.proto.label for d in at.get("download_button")}

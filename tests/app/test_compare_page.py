"""AppTest of the Compare page: two tiny models on the same image (evidence for and against, names escaped),
dataset passes as background jobs kept in the workspace, scores joined only on equal keys, matching,
latent views, and the report kept in the workspace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from protoviz.compare.summary import probe_indices
from protoviz.data.classnames import with_class_names
from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.heatmaps import explain_image
from protoviz.metrics.score import Score
from protoviz.models import load_model
from protoviz.models.checkpoint import save_model
from protoviz.payload import Payload, result_type
from protoviz.provenance import canonical
from protoviz.workspace import RunKey, Workspace
from tests.app.conftest import OWNER, with_owner
from tests.app.waiting import captions, kept_runs, rerun_until, wait_for_runs
from tests.conftest import make_tiny_model

PAGE = str(Path(__file__).resolve().parents[2] / "app" / "views" / "compare.py")


@result_type("test.compare-scores")
@dataclass(frozen=True)
class KeptScores:
    """A kept result with headline scores, as an evaluation is kept (``results``: metric -> Score)."""

    results: dict[str, Score]

    def to_payload(self) -> Payload:
        return Payload(data={m: [s.value, s.unit] for m, s in self.results.items()})

    @classmethod
    def from_payload(cls, payload: Payload) -> KeptScores:
        return cls({m: Score(m, value, unit) for m, (value, unit) in payload.data.items()})


@pytest.fixture(scope="module")
def page_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compare-page") / "data"
    return generate_dataset(root, SyntheticConfig(image_size=64, n_train_per_class=0, n_test_per_class=2))


def _scores(app: AppTest):
    """The scores table (the dataframe with a 'model' and an 'accuracy' column)."""
    return next(d.value for d in app.dataframe if {"model", "accuracy (%)"} <= set(d.value.columns))


def _errors(app: AppTest) -> list[str]:
    return [e.value for e in app.error] + [str(x.value) for x in app.exception]


def _page(timeout: int = 180) -> AppTest:
    return with_owner(AppTest.from_file(PAGE, default_timeout=timeout))


def test_two_models_side_by_side_with_evidence_for_and_against(app_env: None, model_dir: Path,
                                                               sample_dir: Path) -> None:
    marked = with_class_names(make_tiny_model(seed=7), ["*bold*", "[link](http://x)", "<b>c</b>"])
    save_model(marked, model_dir / "tiny_marked.safetensors")
    app = _page(120).run()
    assert _errors(app) == []
    assert app.multiselect(key="compare.models").value == ["tiny_cosine", "tiny_log"]
    app.multiselect(key="compare.models").set_value(["tiny_cosine", "tiny_log", "tiny_marked"])
    app.multiselect(key="compare.images.samples").set_value(["sample_a.png"]).run()
    assert _errors(app) == []
    predictions = [m.value for m in app.markdown if " predicts " in m.value]
    assert len(predictions) == 3
    assert predictions[0].startswith(r"**tiny\_cosine** predicts") and predictions[1].startswith(r"**tiny\_log** predicts")
    expected = 0  # up to 3 cards of evidence for and 3 against per model, as many as the library finds
    for name in ("tiny_cosine", "tiny_log", "tiny_marked"):
        [item] = explain_image(load_model(model_dir / f"{name}.safetensors"),
                               [Image.open(sample_dir / "sample_a.png").convert("RGB")], top_k=3)
        expected += len(item.prototypes) + len(item.against)
    assert sum("similarity" in c.value and "weight" in c.value for c in app.caption) == expected >= 6
    assert sum(m.value.startswith("**Evidence against**") for m in app.markdown) == 3
    assert sum(m.value.startswith("**Evidence for**") for m in app.markdown) == 3
    assert sum(c.value.startswith("Score of ") and "other prototypes and bias" in c.value for c in app.caption) == 3
    assert sum("ST-ProtoPNet · similarity: cosine" in c.value for c in app.caption) == 1  # the model's real name
    # the file's class names reach markdown escaped: no bold, link or HTML made of them
    marked_line = next(m for m in predictions if m.startswith(r"**tiny\_marked**"))
    assert marked_line.split(" predicts ")[1] in (r"**\*bold\***", r"**\[link\]\(http://x\)**", r"**\<b\>c\</b\>**")
    texts = [m.value for m in app.markdown] + [c.value for c in app.caption]
    assert not any("*bold*" in t or "[link](" in t or "<b>c</b>" in t for t in texts)


def test_a_single_model_asks_for_another(app_env: None) -> None:
    app = _page(60).run()
    app.multiselect(key="compare.models").set_value(["tiny_log"]).run()
    assert any("at least two models" in i.value for i in app.info) and _errors(app) == []


def _with_data(app: AppTest, folder: Path, limit: int) -> None:
    app.multiselect(key="compare.models").set_value(["eight_a", "eight_b"]).run()
    app.radio(key="compare.data.source").set_value("local folder").run()
    app.text_input(key="compare.data.folder").set_value(str(folder))
    app.number_input(key="compare.data.limit").set_value(limit)


def _keep_scores(run_key: RunKey, split: str, count: int, total: int, consistency: float) -> None:
    """Keep consistency/stability of the pass's model as the Compare page keys them, for ``split`` and
    ``count`` probe images (seed 0) out of ``total``."""
    from app.compare_runs import part_config
    from protoviz.compare.summary import CompareConfig

    settings = part_config(CompareConfig()).settings(probe_indices(total, count, 0))
    key = RunKey.make("evaluate", run_key.model_sha256, run_key.dataset_fingerprint,
                      canonical({**settings, "split": split}))
    Workspace().for_owner(OWNER).save_run(key, KeptScores({"consistency": Score("consistency", consistency, "%"),
                                                           "stability": Score("stability", 50.0, "%")}))


def test_dataset_passes_matching_joins_and_report(app_env: None, model_dir: Path, page_dataset: Path) -> None:
    for seed, name in ((3, "eight_a"), (4, "eight_b")):  # the synthetic set's 8 classes, matched by index
        save_model(make_tiny_model(seed=seed, classes=8, per_class=1), model_dir / f"{name}.safetensors")
    app = _page().run()
    _with_data(app, page_dataset, 12)
    app.button(key="compare.compute").click().run()
    assert _errors(app) == []
    runs = wait_for_runs("compare", 2)  # two jobs, one per model, kept in the workspace
    rerun_until(app, lambda a: any({"model", "accuracy (%)"} <= set(d.value.columns) for d in a.dataframe)
                and len(_scores(a)) == 2)
    assert _errors(app) == []
    table = _scores(app)
    assert list(table["model"]) == ["eight_a", "eight_b"] and list(table["images"]) == [12, 12]
    assert all(0.0 <= a <= 100.0 for a in table["accuracy (%)"])  # percent, like the Evaluate page
    metrics = {m.label: m.value for m in app.metric}
    assert int(metrics[r"matched pairs"]) + int(metrics[r"no counterpart in eight\_b"]) == 8
    assert app.radio(key="compare.profile").value == "parts"  # matching measures parts by default
    assert any(c.value.startswith("Profile 'parts': where in each image") for c in app.caption)
    assert any(c.value.startswith("Two prototypes are flagged as near-duplicates when their 'parts' activation "
                                  "profiles over the 12 probe images correlate above r = 0.99") and
               "and their prototype vectors' centred cosine is above 0.99" in c.value for c in app.caption)
    # scores join a row only on equal keys: another split or other images never land in it, the same do
    first = next(r for r in runs if r.model_name == "eight_a")
    _keep_scores(first.key, "train", 12, 16, 11.0)  # same images and settings, another split
    _keep_scores(first.key, "test", 10, 16, 22.0)  # same split, other images
    app.run()
    assert "consistency (%)" not in _scores(app).columns
    _keep_scores(first.key, "test", 12, 16, 33.0)  # exactly this page's images and settings
    app.run()
    table = _scores(app).set_index("model")
    assert table.loc["eight_a", "consistency (%)"] == 33.0 and table["consistency (%)"].isna().loc["eight_b"]
    # a later visit: the passes come from the store, nothing is recomputed
    again = _page().run()
    _with_data(again, page_dataset, 12)
    again.run()
    assert _errors(again) == [] and captions(again).count("From the store") >= 2
    assert list(_scores(again)["model"]) == ["eight_a", "eight_b"] and len(kept_runs("compare")) == 2
    # latent space: PCA at once, with its variance on the axes
    assert sum('"PC1 (' in c.proto.spec for c in again.get("plotly_chart")) == 2
    # the report is kept too: a new session can download it without building it again
    again.button(key="compare.build_report").click().run()
    assert _errors(again) == [] and any("self-contained" in c.value for c in again.caption)
    [report] = kept_runs("compare.report")
    assert report.model_name == "eight_a vs eight_b"
    third = _page().run()
    _with_data(third, page_dataset, 12)
    third.run()
    assert any("self-contained" in c.value for c in third.caption)
    assert any(b.proto.label == "Download the report (HTML)" for b in third.get("download_button"))


@pytest.mark.skipif(not hasattr(__import__("protoviz.metrics.runner", fromlist=["x"]).EvaluationResult, "to_payload"),
                    reason="needs evaluations kept in the workspace (the Evaluate page's typed result)")
def test_consistency_and_stability_as_a_job_join_the_rows(app_env: None, model_dir: Path,
                                                          page_dataset: Path) -> None:
    for seed, name in ((3, "eight_a"), (4, "eight_b")):
        save_model(make_tiny_model(seed=seed, classes=8, per_class=1), model_dir / f"{name}.safetensors")
    app = _page().run()
    _with_data(app, page_dataset, 12)
    app.button(key="compare.compute").click().run()
    wait_for_runs("compare", 2)
    rerun_until(app, lambda a: any(b.key == "compare.compute_parts" for b in a.button))
    accuracy = dict(zip(_scores(app)["model"], _scores(app)["accuracy (%)"]))
    app.button(key="compare.compute_parts").click().run()
    wait_for_runs("evaluate", 2)
    rerun_until(app, lambda a: "stability (%)" in _scores(a).columns and _scores(a)["stability (%)"].notna().all())
    table = _scores(app)
    assert {"consistency (%)", "stability (%)"} <= set(table.columns)
    assert dict(zip(table["model"], table["accuracy (%)"])) == accuracy  # never overwritten


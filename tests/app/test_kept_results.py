"""Other pages read the Evaluate page's results from the visitor's workspace (where that page keeps them):
the Prototypes card shows a model's kept scores, never another model's or another visitor's."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from protoviz.metrics.runner import EvaluationResult
from protoviz.metrics.score import Score
from protoviz.models.checkpoint import file_sha256
from protoviz.provenance import DatasetIdentity, Provenance
from protoviz.workspace import Workspace
from tests.app.conftest import OWNER, VIEWS, with_owner

OTHER_OWNER = "apptest-visitor-11111111"


def _kept(owner: str, sha: str, consistency: float) -> None:
    """An Evaluate-page result of model ``sha`` (6 prototypes) kept in ``owner``'s workspace."""
    provenance = Provenance(sha, {"checkpoint_sha256": sha}, DatasetIdentity("f" * 64, "test", {"root": "/data/x"}),
                            {"metrics": ["consistency", "stability"]}, 0, "cpu", {}, 6, 8, 8, 0, 1, "now", 1.0,
                            kind="evaluate")
    results = {name: Score(name, value, "%", column=name, provenance=provenance)
               for name, value in (("consistency", consistency), ("stability", 77.0))}
    rows = [{"prototype": j, "consistent": j % 2 == 0, "dominant frequency": j / 10} for j in range(6)]
    result = EvaluationResult(results, rows, provenance)
    Workspace(owner=owner).save_run(result.key, result, model_name="tiny_log", dataset_name="x · test · clean")


def _card(model: str = "tiny_log") -> AppTest:
    app = with_owner(AppTest.from_file(str(VIEWS / "prototypes.py"), default_timeout=120), OWNER)
    app.query_params["model"] = model
    app.query_params["prototype"] = "3"
    return app.run()


def test_the_card_reads_the_evaluate_pages_kept_result(app_env: None, model_dir: Path) -> None:
    sha = file_sha256(model_dir / "tiny_log.safetensors")
    _kept(OWNER, sha, 42.0)
    app = _card()
    assert not app.exception
    assert any(m.value == "**Model scores**: consistency 42.0 % · stability 77.0 %" for m in app.markdown)
    assert any("other images: test split of /data/x, 6 images" in c.value for c in app.caption)
    table = next(d.value for d in app.dataframe if "property" in d.value.columns)
    assert dict(zip(table["property"], table["value"]))["dominant frequency"] == "0.300"


def test_another_models_or_visitors_result_is_not_shown(app_env: None, model_dir: Path) -> None:
    _kept(OWNER, "another model" + "0" * 51, 1.0)
    _kept(OTHER_OWNER, file_sha256(model_dir / "tiny_log.safetensors"), 2.0)
    app = _card()
    assert not app.exception
    assert not any("Model scores" in m.value for m in app.markdown)
    assert not any("other images:" in c.value for c in app.caption)

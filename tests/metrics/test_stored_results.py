"""Evaluation results and scores as workspace payloads: every number, unit, per-prototype row, the details
figures need and the provenance (hence the key) survive the round trip; the key is known before the run;
one RunKey for the workspace and the provenance; the pointing game as a registered metric."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from protoviz.data.datasets import open_dataset
from protoviz.data.synthetic import SyntheticConfig, generate_dataset
from protoviz.errors import DatasetError, WorkspaceError
from protoviz.explain.pointing import pointing_game
from protoviz.metrics.registry import get_metric, list_metrics
from protoviz.metrics.runner import EvaluationConfig, EvaluationResult, evaluate, evaluation_key
from protoviz.metrics.score import PERCENT, Score
from protoviz.payload import as_payload, decode
from protoviz.provenance import DatasetIdentity, Provenance, RunKey
from protoviz.workspace import RunKey as WorkspaceRunKey
from protoviz.workspace import Workspace
from tests.conftest import make_tiny_model


@pytest.fixture(scope="module")
def syn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = SyntheticConfig(image_size=64, n_train_per_class=0, n_test_per_class=2, seed=3)
    return generate_dataset(tmp_path_factory.mktemp("syn"), config)


def _model():  # type: ignore[no-untyped-def]
    model = make_tiny_model(classes=8, per_class=2).eval()
    model.metadata["checkpoint_sha256"] = "e" * 64
    return model


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def test_an_evaluation_round_trips_through_the_workspace(syn: Path) -> None:
    data = open_dataset(syn)
    config = EvaluationConfig(metrics=tuple(list_metrics()), batch_size=5, deletion_steps=3,
                              deletion_images_per_class=1)
    key = evaluation_key("e" * 64, data, config)  # made before running, as a page does
    result = evaluate(_model(), data, config)
    assert result.provenance.key == key == result.key and key.kind == "evaluate" and key.complete
    assert key.settings_dict["metrics"] == list_metrics() and key.settings_dict["split"] == "test"

    record = Workspace().save_run(key, result, model_name="tiny", dataset_name="syn")
    assert record.result_type == "evaluation" and not record.cached
    back = decode(Workspace().find_run(key).payload)
    assert isinstance(back, EvaluationResult) and back.provenance.key == key
    assert all(_same(v, back.scores[k]) for k, v in result.scores.items()) and back.units == result.units
    assert list(back.results) == list(result.results)
    for name, score in result.results.items():
        other = back.results[name]
        assert (other.unit, other.column, other.extra, other.spread) == (score.unit, score.column, score.extra,
                                                                           score.spread)
        for mine, theirs in zip(score.rows, other.rows, strict=True):
            assert mine.keys() == theirs.keys()
            assert all(_same(v, theirs[k]) if isinstance(v, float) else v == theirs[k] for k, v in mine.items())
    np.testing.assert_array_equal(back.parts.frequencies, result.parts.frequencies)
    assert back.parts.dominant_part_names() == result.parts.dominant_part_names()
    assert back.parts.config == result.parts.config and back.parts.half_size_pixels == result.parts.half_size_pixels
    np.testing.assert_array_equal(back.deletion.deletion, result.deletion.deletion)
    np.testing.assert_array_equal(back.accuracy.per_class, result.accuracy.per_class)
    assert back.results["pointing_game"].details.rows == result.results["pointing_game"].details.rows
    table = record.payload.tables["scores"]
    assert {"metric": "purity", "score": "purity", "value": result.scores["purity"], "unit": "fraction"} in table
    without_blobs = decode(Workspace().find_run(key, with_blobs=False).payload)
    assert without_blobs.parts is None and without_blobs.scores.keys() == result.scores.keys()


def test_the_key_follows_what_changes_the_numbers(syn: Path) -> None:
    data = open_dataset(syn)
    base = EvaluationConfig(metrics=("accuracy", "consistency"))
    key = evaluation_key("e" * 64, data, base)
    assert evaluation_key("e" * 64, data, EvaluationConfig(metrics=("consistency", "accuracy"), batch_size=3)) == key
    assert evaluation_key("e" * 64, data, EvaluationConfig(metrics=("accuracy",))) != key  # other scores kept
    assert evaluation_key("e" * 64, data, EvaluationConfig(metrics=base.metrics, limit=4)) != key
    assert evaluation_key("e" * 64, open_dataset(syn, split="all"), base) != key
    from protoviz.data.published import published_dataset

    published = evaluation_key("e" * 64, published_dataset(data), base)
    assert published.dataset_fingerprint != key.dataset_fingerprint and published.settings == key.settings


def test_a_score_round_trips_alone(syn: Path) -> None:
    result = evaluate(_model(), open_dataset(syn), EvaluationConfig(metrics=("stability",), batch_size=4))
    score = result.results["stability"]
    payload = as_payload(score)
    assert payload.type == "score" and payload.tables["scores"][0]["unit"] == PERCENT
    back = decode(payload)
    assert isinstance(back, Score) and back.value == score.value and back.key == score.key
    np.testing.assert_array_equal(back.details.stable_fraction, score.details.stable_fraction)


def test_one_run_key_for_workspace_and_provenance() -> None:
    assert WorkspaceRunKey is RunKey
    identity = DatasetIdentity("f" * 64, "test")
    key = RunKey.of("evaluate", "a" * 64, identity, {"mu": 0.8, "nan": math.nan})
    assert key.settings_dict == {"mu": 0.8, "nan": "nan", "split": "test"} and key.complete
    assert not RunKey.of("evaluate", None, identity, {}).complete
    with pytest.raises(WorkspaceError, match="cannot be kept"):
        Workspace().save_run(RunKey.of("evaluate", None, identity, {}), {"x": 1})
    provenance = Provenance("a" * 64, {}, identity, {"mu": 0.8}, 0, "cpu", {}, 3, 2, 2, 0, 1, "now", 1.0, kind="why")
    assert provenance.key == RunKey.of("why", "a" * 64, identity, {"mu": 0.8})
    assert Provenance.from_dict(provenance.to_dict()).key == provenance.key


def test_the_pointing_game_is_a_registered_metric(syn: Path, tmp_path: Path) -> None:
    info = get_metric("pointing_game")
    assert info.unit == PERCENT and "masks" in info.needs and "pointing_game" in list_metrics()
    data = open_dataset(syn)
    model = _model()
    config = EvaluationConfig(metrics=("pointing_game",), batch_size=3, pointing_top=2, pointing_area=0.2)
    result = evaluate(model, data, config)
    game = pointing_game(model, data, "upsample", top=2, area=0.2, batch_size=5)
    assert result.scores["pointing_game"] == pytest.approx(100 * game.mask_relevance, abs=1e-9)
    assert result.scores["pointing_energy"] == pytest.approx(100 * game.energy_relevance, abs=1e-9)
    counts = [row["pointing_images"] for row in result.prototypes]
    assert sum(counts) == 2 * len(data)
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "plain" / cls).mkdir(parents=True)
        Image.new("RGB", (20, 20)).save(tmp_path / "plain" / cls / "x.png")
    without = open_dataset(tmp_path / "plain")
    assert isinstance(info.unavailable(without), DatasetError)
    with pytest.raises(DatasetError, match="pointing_game needs per-pixel object masks"):
        evaluate(model, without, EvaluationConfig(metrics=("pointing_game",)))

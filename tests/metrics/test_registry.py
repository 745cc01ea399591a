"""The metric registry: every registered metric on every registered family (generated from both
registries), units and defaults from the registry, and a new metric is one registration away."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from protoviz.data.datasets import ImageDataset, open_dataset
from protoviz.errors import ConfigError, DatasetError
from protoviz.metrics import registry
from protoviz.metrics.config import PartMetricConfig
from protoviz.metrics.registry import Metric, default_metrics, get_metric, list_metrics, register_metric
from protoviz.metrics.runner import EvaluationConfig, EvaluationRun, evaluate
from protoviz.metrics.score import FRACTION, PERCENT, RATIO, Score
from protoviz.models.registry import FAMILIES, build_model, list_families
from protoviz.passes import Needs, PassStep
from tests.metrics.test_families import make_parts_dataset

RANGES = {PERCENT: (0.0, 100.0), FRACTION: (0.0, 1.0), RATIO: (-math.inf, math.inf)}


@pytest.fixture(scope="module")
def parts_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_parts_dataset(tmp_path_factory.mktemp("parts"), classes=3)


def _model(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(family, FAMILIES.get(family).example_config()).eval()


@pytest.mark.parametrize("family", list_families())
@pytest.mark.parametrize("metric", list_metrics())
def test_every_metric_on_every_family(metric: str, family: str, tmp_path: Path) -> None:
    model = _model(family)
    data = open_dataset(make_parts_dataset(tmp_path, model.num_classes, per_class=1, masks=True), crop_to_box=False)
    config = EvaluationConfig(metrics=(metric,), parts=PartMetricConfig(merge_left_right=True), batch_size=2,
                              deletion_steps=2, deletion_images_per_class=1, purity_top_k=2)
    result = evaluate(model, data, config)
    info, score = get_metric(metric), result.results[metric]
    assert score.metric == metric and score.unit == info.unit and score.provenance == result.provenance
    low, high = RANGES[score.unit]
    assert math.isnan(score.value) or low <= score.value <= high, score
    assert len(result.prototypes) == model.num_prototypes
    assert all(len(row) for row in score.rows) and len(score.rows) in (0, model.num_prototypes)
    assert set(result.scores) >= set(score.headline()) and result.provenance.notes["metrics"] == [metric]


def test_defaults_and_availability_come_from_the_registry(parts_root: Path, tmp_path: Path) -> None:
    with_parts = open_dataset(parts_root)
    assert default_metrics(with_parts) == ("accuracy", "consistency", "stability")
    folder = tmp_path / "folder"
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        from PIL import Image
        Image.new("RGB", (8, 8)).save(folder / cls / "x.png")
    without = open_dataset(folder)
    assert default_metrics(without) == ("accuracy", "region_stability")
    assert isinstance(get_metric("consistency").unavailable(without), DatasetError)
    assert isinstance(get_metric("object_overlap").unavailable(with_parts), ConfigError)  # cropped to its boxes
    assert get_metric("object_overlap").unavailable(open_dataset(parts_root, crop_to_box=False)) is None
    assert list_metrics()[:3] == ["accuracy", "consistency", "stability"] and "object_overlap" in list_metrics()
    assert {get_metric(m).unit for m in ("accuracy", "consistency", "stability")} == {PERCENT}


def test_registration_errors() -> None:
    with pytest.raises(ConfigError, match="already registered"):
        register_metric("accuracy", unit=PERCENT, description="again")(type("Again", (Metric,), {}))
    with pytest.raises(ConfigError, match="unknown needs"):
        register_metric("x", unit=PERCENT, description="x", needs={"telepathy"})
    with pytest.raises(ConfigError, match="unit must be one of"):
        register_metric("x", unit="percent", description="x")
    with pytest.raises(ConfigError, match="unknown metric"):
        EvaluationConfig(metrics=("consistancy",))


class MeanSimilarity:
    """A consumer: the mean pooled similarity of each prototype."""

    needs = Needs()

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.count = 0

    def update(self, step: PassStep) -> None:
        batch = step.pooled.double().sum(0)
        self.total = batch if self.total is None else self.total + batch
        self.count += step.pooled.shape[0]

    def merge(self, other: MeanSimilarity) -> None:
        if other.total is not None:
            self.total = other.total if self.total is None else self.total + other.total
        self.count += other.count

    def result(self) -> torch.Tensor:
        assert self.total is not None
        return self.total / self.count


def test_a_new_metric_is_one_registration(parts_root: Path) -> None:
    @register_metric("mean_similarity", unit=RATIO, description="mean pooled similarity (a test metric)")
    class MeanSimilarityMetric(Metric):
        def consumer(self, run: EvaluationRun) -> MeanSimilarity:
            return MeanSimilarity()

        def score(self, run: EvaluationRun, state: torch.Tensor) -> Score:
            return Score("mean_similarity", float(state.mean()), RATIO,
                         rows=tuple({"mean_similarity": float(v)} for v in state))

    try:
        assert list_metrics()[-1] == "mean_similarity"
        data: ImageDataset = open_dataset(parts_root)
        model = _model("protopnet")
        result = evaluate(model, data, EvaluationConfig(metrics=("consistency", "mean_similarity"), batch_size=4))
        assert result.units["mean_similarity"] == RATIO and "mean_similarity" in result.prototypes[0]
        assert result.scores["consistency"] == evaluate(model, data, EvaluationConfig(metrics=("consistency",))
                                                        ).scores["consistency"]  # neighbours change nothing
    finally:
        registry._METRICS.pop("mean_similarity")

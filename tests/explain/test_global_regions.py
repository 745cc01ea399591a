"""Dataset-wide runs honour the region (issue 13): inside / outside the box, focus / dual on a heatmap are
computed per prototype exactly as the local explanation, then averaged with the same weights; prototypes
not named are NaN; too large runs are refused with the numbers; results keep their key through the
workspace payload."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from protoviz.errors import ConfigError
from protoviz.explain import ExplainConfig, explain_dataset, explain_images, global_regions
from protoviz.explain.global_ import GlobalExplanation, global_key
from protoviz.payload import as_payload, decode
from tests.conftest import make_tiny_model


def _images(count: int) -> list[Image.Image]:
    rng = np.random.default_rng(3)
    return [Image.fromarray(rng.integers(0, 255, (56 + 4 * i, 64, 3), dtype=np.uint8)) for i in range(count)]


def _expected(model, images, config, prototypes) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The weighted mean of the local region explanations, image by image (Nauta et al.'s formula)."""
    weighted = np.zeros((len(prototypes), len(config.characteristics)))
    weights = np.zeros(len(prototypes))
    for image in images:
        local = explain_images(model, [image], config, prototypes=prototypes)
        s = local.similarities.double().numpy()[0]  # (K,)
        weighted += (np.clip(s, 0, None)[None, :] * local.deltas.double().numpy()[0]).T
        weights += np.clip(s, 0, None)
    return weighted / weights[:, None]


@pytest.mark.parametrize("region", ["inside", "outside", "focus", "dual"])
def test_region_runs_equal_the_mean_of_local_region_explanations(region: str) -> None:
    model = make_tiny_model(seed=2).eval()
    images = _images(5)
    config = ExplainConfig(region=region, noise_floor=True, names=("hue", "blur", "hue+shape"))
    result = explain_dataset(model, images, config, batch_size=2, prototypes=[4, 1])
    assert result.explained == [1, 4] and result.prototypes == (1, 4)
    np.testing.assert_allclose(result.importance[[1, 4]], _expected(model, images, config, [1, 4]), rtol=1e-4,
                               atol=1e-6)
    assert np.isnan(result.importance[[0, 2, 3, 5]]).all() and np.isnan(result.mean_delta[0]).all()
    identity = result.characteristics.index("identity")
    np.testing.assert_allclose(result.importance[[1, 4], identity], 0.0, atol=1e-6)  # the same path, unchanged
    assert result.run is not None and result.run.settings["prototypes"] == [1, 4]
    assert global_key(None, images, config, prototypes=[1, 4, 4]).settings == result.run.key.settings


def test_regions_change_the_numbers_and_whole_images_are_unchanged() -> None:
    model = make_tiny_model(seed=2).eval()
    images = _images(3)
    whole = explain_dataset(model, images, ExplainConfig(), batch_size=2)
    inside = explain_dataset(model, images, ExplainConfig(region="inside"), batch_size=2)  # all prototypes
    assert inside.explained == list(range(model.num_prototypes)) and whole.prototypes is None
    assert not np.allclose(inside.importance, whole.importance)
    assert whole.run is not None and "prototypes" not in whole.run.settings and whole.run.kind == "why"


def test_too_large_region_runs_are_refused_with_the_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_tiny_model().eval()
    monkeypatch.setattr(global_regions, "MAX_MAP_BYTES", 1000)
    with pytest.raises(ConfigError, match=r"forwards per image.*Choose at most 1 prototypes"):
        explain_dataset(model, _images(2), ExplainConfig(region="outside"), prototypes=[0, 1, 2])
    with pytest.raises(ConfigError, match="prototype indices within"):
        explain_dataset(model, _images(2), ExplainConfig(region="outside"), prototypes=[99])


def test_the_batch_is_cut_to_the_map_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_tiny_model().eval()
    shape = global_regions.map_shape(model)
    per_image = model.num_prototypes * shape[0] * shape[1] * 4 * 2 * 6
    monkeypatch.setattr(global_regions, "MAX_MAP_BYTES", 2 * per_image)
    assert global_regions.region_batch_size(model, ExplainConfig(region="inside"), [0, 1], 16, shape) == 2
    result = explain_dataset(model, _images(3), ExplainConfig(region="inside"), batch_size=16, prototypes=[0, 1])
    assert result.run is not None and result.run.batch_size == 2 and result.num_images == 3


def test_a_global_result_round_trips_through_its_payload() -> None:
    model = make_tiny_model(seed=1).eval()
    result = explain_dataset(model, _images(3), ExplainConfig(region="focus", floors=True), batch_size=2,
                             prototypes=[2])
    payload = as_payload(result)
    assert payload.type == "global_explanation"
    assert {"scores", "importance", "summary"} <= set(payload.tables)
    assert {row["prototype"] for row in payload.tables["importance"]} == {2}
    back = decode(payload)
    assert isinstance(back, GlobalExplanation) and back.config == result.config and back.prototypes == (2,)
    np.testing.assert_array_equal(back.importance, result.importance)
    assert back.run is not None and result.run is not None and back.run.key == result.run.key

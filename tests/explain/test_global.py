"""Global importance: the similarity-weighted mean, streamed; export files; fast vs reference ranks."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from protoviz.errors import ConfigError, DatasetError
from protoviz.explain import ExplainConfig, explain_dataset, explain_images
from protoviz.explain.export import global_csv, global_json, provenance, write_global
from protoviz.explain.extras import rank_agreement
from protoviz.models import load_model
from protoviz.tables import sidecar_path
from tests.conftest import make_tiny_model


def _images(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        small = rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)  # smooth blocks, then detail
        base = np.asarray(Image.fromarray(small).resize((72 + 4 * i, 64), Image.Resampling.BILINEAR), dtype=np.int16)
        base += rng.integers(-20, 20, base.shape, dtype=np.int16)
        out.append(Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)))
    return out


def test_global_is_the_similarity_weighted_mean_of_local_deltas() -> None:
    model = make_tiny_model(seed=2)
    images = _images(5)
    config = ExplainConfig(mode="reference")
    seen: list[tuple[int, int]] = []
    result = explain_dataset(model, images, config, batch_size=2, progress=lambda d, t, s="": seen.append((d, t)))
    parts = [explain_images(model, images[i:i + 2], config) for i in (0, 2, 4)]  # the run's own batches
    s = torch.cat([p.similarities for p in parts]).double().numpy()  # (B, P)
    delta = torch.cat([p.deltas for p in parts]).double().numpy()  # (B, M, P)
    expected = np.einsum("bp,bmp->pm", s, delta) / s.sum(0)[:, None]
    np.testing.assert_allclose(result.importance, expected, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(result.mean_delta, delta.mean(0).T, rtol=1e-5, atol=1e-9)
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert result.num_images == 5
    one_by_one = explain_dataset(model, images, config, batch_size=1)
    # other batch sizes run other float32 kernels: equal up to float32 resolution of s (about 10 here)
    np.testing.assert_allclose(one_by_one.importance, result.importance, rtol=1e-4, atol=2e-6)


def test_limit_and_empty_and_region_errors() -> None:
    model = make_tiny_model()
    images = _images(4)
    assert explain_dataset(model, images, batch_size=3, limit=2).num_images == 2
    with pytest.raises(DatasetError):
        explain_dataset(model, images, limit=0)
    with pytest.raises(ConfigError, match="name prototypes only for region runs"):
        explain_dataset(model, images, prototypes=[0])
    with pytest.raises(ConfigError):
        explain_dataset(model, images, batch_size=0)


def test_dataset_items_with_an_image_attribute_are_read() -> None:
    class Item:
        def __init__(self, image: Image.Image):
            self.image = image

    model = make_tiny_model()
    images = _images(3)
    from_items = explain_dataset(model, [Item(im) for im in images], batch_size=2)
    from_images = explain_dataset(model, images, batch_size=2)
    np.testing.assert_allclose(from_items.importance, from_images.importance)


def test_export_files_record_how_they_were_made(tiny_checkpoint, tmp_path) -> None:
    model = load_model(tiny_checkpoint)
    info = provenance(model, "tiny", {"root": "memory", "images": 3}, seed=0)
    result = explain_dataset(model, _images(3), ExplainConfig(noise_floor=True), batch_size=2, provenance=info)
    csv_path, json_path = write_global(result, tmp_path / "out", model)
    table = pd.read_csv(csv_path)  # a plain table: nothing before the header
    assert len(table) == model.num_prototypes * 7
    assert set(table["characteristic"]) == {"hue", "shape", "texture", "contrast", "saturation", "brightness",
                                            "identity"}
    header = json.loads(sidecar_path(csv_path).read_text())
    assert header["table"] == "characteristics.csv"
    doc = json.loads(json_path.read_text())
    for record in (header, doc):
        assert record["config"]["mode"] == "fast" and record["config"]["params"]["hue"] == 0.1
        assert record["model"]["checkpoint_sha256"] == model.metadata["checkpoint_sha256"]
        assert record["versions"]["torch"] == torch.__version__ and "device" in record and record["seed"] == 0
    assert len(doc["prototypes"]) == model.num_prototypes and doc["images"] == 3
    assert global_csv(result, model).startswith("prototype,")
    assert json.loads(global_json(result))["kind"] == "global_characteristics"
    assert pd.read_csv(io.StringIO(global_csv(result)))["rank"].between(1, 7).all()


def test_fast_and_reference_agree_in_rank_on_a_small_set() -> None:
    """Spearman over prototypes, per characteristic, between the two modes (tiny model, 6 images)."""
    model = make_tiny_model(seed=3, per_class=4)  # 12 prototypes
    images = [im.resize((64, 64)) for im in _images(6, seed=1)]
    fast = explain_dataset(model, images, ExplainConfig(mode="fast"), batch_size=6)
    reference = explain_dataset(model, images, ExplainConfig(mode="reference"), batch_size=6)
    rho = rank_agreement(fast.importance, reference.importance)
    names = fast.characteristics
    by_name = dict(zip(names, rho))
    for name in ("hue", "shape", "contrast", "saturation", "brightness"):
        assert by_name[name] >= 0.9, (name, by_name)
    assert by_name["texture"] >= 0.6, by_name  # the fast filter's search window is capped (7 px)

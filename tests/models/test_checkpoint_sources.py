"""Format version 2's prototype sources (receptive-field and push boxes, distance, origin); version 1 still loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import save_file

from protoviz.errors import CheckpointError
from protoviz.models import PrototypeSource, load_model
from protoviz.models.checkpoint import FORMAT_VERSION, save_model
from tests.conftest import make_tiny_model


def _full_source() -> PrototypeSource:
    thumb = np.arange(6 * 5 * 3, dtype=np.uint8).reshape(6, 5, 3)
    return PrototypeSource("001.a/x.png", (1, 5, 2, 6), thumb, thumb[:2], (1, 2), 0, rf_box=(0, 64, 0, 40),
                           push_box=(3, 9, 2, 6), distance=1.5e-6, distance_kind="squared_l2", origin="push-folder")


def test_version_2_round_trip(tmp_path: Path) -> None:
    model = make_tiny_model()
    model.prototype_sources = [_full_source()] + [None] * 5
    loaded = load_model(save_model(model, tmp_path / "m.safetensors")).prototype_sources[0]
    assert FORMAT_VERSION == "2"
    assert (loaded.rf_box, loaded.push_box, loaded.distance) == ((0, 64, 0, 40), (3, 9, 2, 6), 1.5e-6)
    assert (loaded.distance_kind, loaded.origin, loaded.class_index) == ("squared_l2", "push-folder", 0)
    assert loaded.boxes_differ  # the push box is 2 px away from the model's own box
    assert np.array_equal(loaded.patch_thumbnail, _full_source().patch_thumbnail)


def _rewrite(path: Path, out: Path, **changes: str) -> Path:
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    metadata.update(changes)
    save_file(tensors, str(out), metadata=metadata)
    return out


def test_version_1_files_still_load(tmp_path: Path) -> None:
    model = make_tiny_model()
    model.prototype_sources = [PrototypeSource("img_7", (1, 5, 2, 6), map_location=(1, 2), class_index=0)] + [None] * 5
    path = save_model(model, tmp_path / "v2.safetensors")
    old = [{"image_id": "img_7", "box": [1, 5, 2, 6], "map_location": [1, 2], "class_index": 0}] + [None] * 5
    v1 = _rewrite(path, tmp_path / "v1.safetensors", format_version="1", prototype_sources=json.dumps(old))
    source = load_model(v1).prototype_sources[0]
    assert source.box == (1, 5, 2, 6) and source.rf_box is None and source.origin is None and not source.boxes_differ
    with pytest.raises(CheckpointError, match="format version '3'"):
        load_model(_rewrite(path, tmp_path / "v3.safetensors", format_version="3"))


@pytest.mark.parametrize("record, message", [
    ("not a dict", "JSON object"),
    ({"image_id": "a", "box": [1, 2, 3]}, "box must be a list of 4 integers"),
    ({"image_id": "a", "box": [1, 2, 3, "4"]}, "box must be a list of 4 integers"),
    ({"image_id": "a"}, "box is missing"),
    ({"image_id": ["a"], "box": [0, 1, 0, 1]}, "image_id"),
    ({"image_id": "a", "box": [0, 1, 0, 1], "origin": "magic"}, "origin must be one of"),
    ({"image_id": "a", "box": [0, 1, 0, 1], "distance": "NaN"}, "distance must be a finite number"),
    ({"image_id": "a", "box": [0, 1, 0, 1], "class_index": 1.5}, "class_index"),
    ({"image_id": "a", "box": [0, 1, 0, 1], "push_box": [0, 1, True, 1]}, "push_box"),
    ({"image_id": "x" * 5000, "box": [0, 1, 0, 1]}, "image_id"),
])
def test_malformed_records_raise(tmp_path: Path, record: Any, message: str) -> None:
    path = save_model(make_tiny_model(), tmp_path / "m.safetensors")
    bad = _rewrite(path, tmp_path / "bad.safetensors", prototype_sources=json.dumps([record] + [None] * 5))
    with pytest.raises(CheckpointError, match=message):
        load_model(bad)


def test_malformed_metadata_and_thumbnails_raise(tmp_path: Path) -> None:
    path = save_model(make_tiny_model(), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(_rewrite(path, tmp_path / "a.safetensors", prototype_sources="[{"))
    with pytest.raises(CheckpointError, match="JSON list"):
        load_model(_rewrite(path, tmp_path / "b.safetensors", prototype_sources='{"a": 1}'))
    model = make_tiny_model()
    model.prototype_sources = [_full_source()] + [None] * 5
    model.prototype_sources[0].image_thumbnail = np.zeros((4, 4, 4), dtype=np.uint8)  # RGBA: not a thumbnail
    with pytest.raises(CheckpointError, match=r"\(h, w, 3\) uint8"):
        load_model(save_model(model, tmp_path / "c.safetensors"))

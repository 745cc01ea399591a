"""The native .safetensors format: round trips, and clear errors on bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from protoviz.errors import CheckpointError
from protoviz.models import PrototypeSource, load_model
from protoviz.models.checkpoint import save_model
from tests.conftest import make_tiny_model


def test_sources_and_extra_metadata_round_trip(tmp_path: Path) -> None:
    model = make_tiny_model()
    thumb = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    model.prototype_sources = [PrototypeSource("img_7", (1, 5, 2, 6), thumb, thumb[:4, :4], (1, 2), 0)] + [None] * 5
    path = save_model(model, tmp_path / "m.safetensors", extra={"accuracy": 0.93})
    loaded = load_model(path)
    source = loaded.prototype_sources[0]
    assert source.image_id == "img_7" and source.box == (1, 5, 2, 6) and source.map_location == (1, 2)
    assert np.array_equal(source.image_thumbnail, thumb) and np.array_equal(source.patch_thumbnail, thumb[:4, :4])
    assert loaded.prototype_sources[1:] == [None] * 5
    assert loaded.metadata["accuracy"] == 0.93 and len(loaded.metadata["checkpoint_sha256"]) == 64


def test_truncated_file_raises(tiny_checkpoint: Path) -> None:
    data = tiny_checkpoint.read_bytes()
    tiny_checkpoint.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(tiny_checkpoint)


def test_mismatched_weights_raise_with_the_tensor_named(tmp_path: Path) -> None:
    model = make_tiny_model()
    path = save_model(model, tmp_path / "m.safetensors")
    from safetensors import safe_open
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 - safe_open is not iterable
    tensors["prototype_vectors"] = torch.zeros(7, 8, 1, 1)
    del tensors["last_layer.weight"]
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match=r"missing 1 tensors \(e\.g\. last_layer\.weight\).*prototype_vectors"):
        load_model(path)


def test_safetensors_without_protoviz_metadata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="without protoviz metadata"):
        load_model(path)


def test_unknown_family_and_bad_config_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "f.safetensors"
    meta = {"format": "protoviz", "format_version": "1", "family": "nonesuch", "config": "{}"}
    save_file({"w": torch.zeros(2)}, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="unknown model family 'nonesuch'"):
        load_model(path)
    meta["family"] = "protopnet"
    meta["config"] = json.dumps({"class_names": ["a"]})
    save_file({"w": torch.zeros(2)}, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="malformed"):
        load_model(path)


def test_not_a_checkpoint_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such file"):
        load_model(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"hello world, not a model")
    with pytest.raises(CheckpointError):
        load_model(junk)

"""PIP-Net with ConvNeXt-tiny (its default --net): convnext_tiny_26 and convnext_tiny_13 share their weights
and differ only in strides, so the variant comes from the backbone hint, the run folder's
metadata/args.txt, or PIP-Net's default (26). One ~110 MB checkpoint is written for the module."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from protoviz.errors import CheckpointError
from protoviz.models import load_model
from tests.models.legacy import reference as ref
from tests.models.legacy import writers as w

pytestmark = pytest.mark.slow  # ConvNeXt-tiny: 28 M parameters, built four times
TOLERANCE = 1e-5
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A PIP-Net run folder trained with --net convnext_tiny_13 (with --bias)."""
    net = w.pipnet(net="convnext_tiny_13", bias=True)
    folder = w.save_pipnet_run(net, tmp_path_factory.mktemp("pipnet") / "run",
                               {"dataset": "CUB-200-2011", "net": "convnext_tiny_13", "num_features": 0, "bias": True})
    return folder, net


def _check(model, net: torch.nn.Module, map_size: tuple[int, int]) -> None:
    with torch.no_grad():
        out = model(X)
    logits, maps = ref.pipnet(net, X)
    assert out.similarity_maps.shape == maps.shape and maps.shape[-2:] == map_size
    assert float((out.logits.double() - logits).abs().max()) <= TOLERANCE
    assert float((out.similarity_maps.double() - maps).abs().max()) <= TOLERANCE
    assert int((out.max_similarities >= 0.1).sum()) > 0  # the threshold keeps some prototypes: logits not just bias


def test_the_run_folder_names_convnext_tiny_13(run) -> None:
    folder, net = run
    model = load_model(folder)
    assert model.backbone_name == "convnext_tiny_13"
    assert "metadata/args.txt" in model.metadata["load_hints"]["backbone"]
    _check(model, net, (3, 3))  # 64 px: 16 after the stem, 8 and 4 after the kept downsamplings, 3 after the third


def test_the_hint_chooses_the_variant_of_the_same_weights(run) -> None:
    folder, net = run
    model = load_model(folder / "net_trained_last", backbone="convnext_tiny_26")  # the hint wins over args.txt
    assert model.backbone_name == "convnext_tiny_26"
    as_26 = w.pipnet(net="convnext_tiny_26", bias=True)
    as_26.load_state_dict(net.state_dict())
    _check(model, as_26, (6, 6))  # 64 px: 16, then 8, 7, 6 (26x26 at 224 px)


def test_a_bare_file_assumes_pipnets_default(run, tmp_path: Path) -> None:
    folder, _ = run
    bare = tmp_path / "net_trained_last"
    bare.write_bytes((folder / "net_trained_last").read_bytes())
    model = load_model(bare)
    assert model.backbone_name == "convnext_tiny_26" and "assumed" in model.metadata["load_hints"]["backbone"]


def test_the_backbone_hint_is_refused_for_a_resnet(tmp_path: Path) -> None:
    path = w.save(w.pipnet_checkpoint(w.pipnet()), tmp_path / "net_trained_last", "zip")
    with pytest.raises(CheckpointError, match="applies only to PIP-Net's ConvNeXt"):
        load_model(path, backbone="convnext_tiny_13")

"""The native ProtoPNet family against its formulas."""

from __future__ import annotations

import math

import pytest
import torch

from protoviz.errors import ConfigError
from protoviz.models.backbones import build_backbone, list_backbones
from protoviz.models.protopnet import ProtoPNet, ProtoPNetConfig, build_add_on, cosine_similarity, log_similarity
from protoviz.models.registry import FamilyRegistry
from tests.conftest import make_tiny_model


def test_log_similarity_matches_formula_in_float64() -> None:
    torch.manual_seed(0)
    z = torch.rand(2, 5, 3, 4, dtype=torch.float64)
    p = torch.rand(6, 5, dtype=torch.float64)
    sims = log_similarity(z, p)
    for b, j, r, c in [(0, 0, 0, 0), (1, 5, 2, 3), (1, 2, 1, 1)]:
        d = float(((z[b, :, r, c] - p[j]) ** 2).sum())
        assert sims[b, j, r, c].item() == pytest.approx(math.log((d + 1) / (d + 1e-4)), rel=1e-12)


def test_log_similarity_is_largest_at_the_prototype_itself() -> None:
    z = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    z[0, :, 1, 0] = torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64)
    sims = log_similarity(z, z[0, :, 1, 0].view(1, 3))
    assert sims[0, 0].argmax().item() == 2
    assert sims[0, 0, 1, 0].item() == pytest.approx(math.log(1 / 1e-4))


def test_cosine_similarity_matches_formula() -> None:
    torch.manual_seed(1)
    z = torch.randn(1, 4, 2, 2, dtype=torch.float64)
    p = torch.randn(3, 4, dtype=torch.float64)
    sims = cosine_similarity(z, p)
    expected = torch.nn.functional.cosine_similarity(z[0, :, 1, 1], p[2], dim=0)
    assert sims[0, 2, 1, 1].item() == pytest.approx(expected.item(), rel=1e-12)


def test_support_trivial_logits_are_the_sum_of_both_heads() -> None:
    model = make_tiny_model(similarity="cosine", sets=("support", "trivial"))
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    groups = model.prototype_groups()
    heads = []
    for name, (a, b) in groups.items():
        heads.append(out.max_similarities[:, a:b] @ getattr(model, f"last_layer_{name}").weight.t())
    torch.testing.assert_close(out.logits, heads[0] + heads[1])
    assert set(groups) == {"support", "trivial"}


def test_last_layer_initialisation_and_identity() -> None:
    model = make_tiny_model(classes=3, per_class=2)
    identity = model.prototype_class_identity
    assert identity.sum(1).tolist() == [1.0] * 6
    assert identity.argmax(1).tolist() == [0, 0, 1, 1, 2, 2]
    weights = model.class_weights
    assert weights[0, 0].item() == 1.0 and weights[1, 0].item() == -0.5


def test_state_dict_keys_follow_the_research_code() -> None:
    keys = set(make_tiny_model().state_dict())
    assert {"prototype_vectors", "last_layer.weight", "add_on_layers.0.weight", "add_on_layers.2.weight"} <= keys
    st_keys = set(make_tiny_model(sets=("support", "trivial")).state_dict())
    assert {"prototype_vectors_support", "prototype_vectors_trivial", "last_layer_trivial.weight"} <= st_keys


def test_bottleneck_add_on_halves_down_to_the_prototype_dim() -> None:
    layers = build_add_on("bottleneck", 512, 128)
    convs = [m for m in layers if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(512, 256), (256, 256), (256, 128), (128, 128)]
    assert isinstance(layers[-1], torch.nn.Sigmoid)


@pytest.mark.parametrize("name,channels,stride", [
    ("resnet18", 512, 32), ("resnet50", 2048, 32), ("vgg11", 512, 32), ("densenet121", 1024, 32),
    ("resnet18_layer3", 256, 16), ("resnet18_stride8", 512, 8), ("tiny_cnn", 128, 16), ("vgg11_stride16", 512, 16),
])
def test_backbones_are_cut_like_protopnet(name: str, channels: int, stride: int) -> None:
    backbone = build_backbone(name).module.eval()
    with torch.no_grad():
        out = backbone(torch.zeros(1, 3, 64, 64))
    assert out.shape[1] == channels and out.shape[2] == 64 // stride


def test_backbone_keys_match_protopnet_names() -> None:
    assert "conv1.weight" in build_backbone("resnet18").module.state_dict()
    assert "features.0.weight" in build_backbone("vgg11").module.state_dict()
    assert "features.conv0.weight" in build_backbone("densenet121").module.state_dict()


def test_bad_configs_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="similarity"):
        ProtoPNetConfig(class_names=("a",), similarity="l1")
    with pytest.raises(ConfigError, match="backbone"):
        ProtoPNet(ProtoPNetConfig(class_names=("a",), backbone="alexnet"))
    assert "resnet34" in list_backbones()


def test_registry_refuses_duplicates() -> None:
    registry = FamilyRegistry()
    registry.register(ProtoPNet)
    with pytest.raises(ConfigError, match="already registered"):
        registry.register(ProtoPNet)
    with pytest.raises(ConfigError, match="unknown model family"):
        registry.get("nope")

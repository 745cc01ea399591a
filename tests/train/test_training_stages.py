"""ProtoPNet's training stages: accuracy rises, last layer trains alone, seeded runs repeat, bad configs raise."""

from __future__ import annotations

import pytest
import torch

from protoviz.errors import ConfigError
from protoviz.models.protopnet import ProtoPNet
from protoviz.train.config import TrainConfig, preset
from protoviz.train.data import ImageTensors
from protoviz.train.stages import freeze_for, pretrain_backbone, train_last_layer
from protoviz.train.trainer import accuracy, train_protopnet
from tests.conftest import make_tiny_model

FAST = TrainConfig(pretrain_epochs=3, warm_epochs=1, joint_epochs=4, last_layer_epochs=3, batch_size=12,
                   pretrain_lr=1e-2, warm_lr=1e-2, features_lr=1e-2, add_on_lr=1e-2, prototype_lr=1e-2,
                   last_layer_lr=1e-2, lr_step=10, device="cpu", seed=0)


def _model(similarity: str = "log", sets: tuple[str, ...] = ("prototypes",)) -> ProtoPNet:
    return make_tiny_model(similarity=similarity, sets=sets, classes=3, per_class=2)


@pytest.mark.parametrize(("similarity", "sets"), [("log", ("prototypes",)), ("cosine", ("support", "trivial"))])
def test_short_training_rises_above_chance(patches: ImageTensors, similarity: str, sets: tuple[str, ...]) -> None:
    model = _model(similarity, sets)
    before = accuracy(model, patches)
    result = train_protopnet(model, patches, FAST)
    after = accuracy(model, patches)
    assert after >= 0.8 and after > before
    assert [s.stage for s in result.history] == ["pretrain"] * 3 + ["warm"] + ["joint"] * 4 + ["last_layer"] * 3
    assert all(s is not None for s in model.prototype_sources)


def test_pretraining_stage_trains_only_the_backbone(patches: ImageTensors) -> None:
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = FAST.replace(pretrain_epochs=1, warm_epochs=0, joint_epochs=0, last_layer_epochs=0)
    pretrain_backbone(model, patches, config, torch.Generator().manual_seed(0))
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("features.") for k in changed)


def test_last_layer_stage_changes_only_the_last_layer(patches: ImageTensors) -> None:
    model = _model("cosine", ("support", "trivial"))
    model.train()  # the stage must switch batch-norm statistics off itself
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = train_last_layer(model, patches, FAST, torch.Generator().manual_seed(0))
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"last_layer_support.weight", "last_layer_trivial.weight"}
    assert len(history) == FAST.last_layer_epochs
    assert all(p.requires_grad for p in model.parameters())


def test_off_class_l1_shrinks_off_class_weights(patches: ImageTensors) -> None:
    model = _model()
    off = 1 - model.prototype_class_identity.t()
    before = (model.class_weights * off).abs().sum()
    train_last_layer(model, patches, FAST.replace(l1=1.0, last_layer_epochs=5), torch.Generator().manual_seed(0))
    assert (model.class_weights * off).abs().sum() < before


def test_freeze_for_warm_stage_leaves_backbone_and_last_layer_frozen() -> None:
    model = _model()
    freeze_for(model, "warm")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.startswith(("add_on_layers", "prototype_vectors"))}
    freeze_for(model, "joint")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.startswith("last_layer") for n in trainable) and any(n.startswith("features") for n in trainable)


def test_seeded_runs_give_identical_weights(patches: ImageTensors) -> None:
    config = FAST.replace(pretrain_epochs=1, joint_epochs=2, push_every=1, last_layer_epochs=1, crop_probability=1.0)
    states = []
    for _ in range(2):
        model = _model()
        train_protopnet(model, patches, config)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    model = _model()
    train_protopnet(model, patches, config.replace(seed=1))
    assert not all(torch.equal(states[0][k], model.state_dict()[k]) for k in states[0])


def test_progress_and_log_callbacks_are_called(patches: ImageTensors) -> None:
    calls: list[tuple[str, int, int]] = []
    lines: list[str] = []
    train_protopnet(_model(), patches, FAST.replace(pretrain_epochs=0, joint_epochs=1, last_layer_epochs=1),
                    progress=lambda step, total, stage="": calls.append((stage, step, total)), log=lines.append,
                    validation=patches)
    assert {c[0] for c in calls} == {"warm", "joint", "push", "last_layer"}
    assert all(1 <= step <= total for _, step, total in calls)
    assert len(lines) == 3 and all(" val " in line for line in lines)


@pytest.mark.parametrize("changes", [
    {"batch_size": 0}, {"warm_lr": 0.0}, {"joint_epochs": -1}, {"lr_gamma": 1.5}, {"crop_probability": 2.0},
    {"cluster": -0.1}, {"seed": -3}, {"image_thumbnail": 0},
])
def test_bad_config_raises_config_error(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="TrainConfig"):
        TrainConfig(**changes)  # type: ignore[arg-type]


def test_unknown_preset_and_field_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="preset"):
        preset("nope")
    with pytest.raises(ConfigError, match="no fields"):
        TrainConfig().replace(epochs=3)

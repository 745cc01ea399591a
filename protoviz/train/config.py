"""Training configuration: one frozen dataclass, validated on construction, plus named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from protoviz.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """How to train a native ProtoPNet through its stages (ProtoPNet, Chen et al. 2019).

    Epoch counts: ``pretrain_epochs`` (backbone with a temporary linear head and cross-entropy, a
    stand-in for ImageNet pre-training; 0 skips it), ``warm_epochs`` (add-on + prototypes, backbone
    frozen), ``joint_epochs`` (backbone + add-on + prototypes), then push, then ``last_layer_epochs``
    (last layer only).
    ``push_every`` > 0 also pushes (and fine-tunes the last layer) every that many joint epochs, as the
    original schedule does; 0 pushes once at the end of the joint stage.
    Loss coefficients: ``cluster`` and ``separation`` (ProtoPNet: 0.8 and 0.08), ``l1`` on the last
    layer's off-class weights (1e-4), ``support_closeness`` for the support set of a support/trivial model.
    ``augment``: random horizontal flip and (for a ``crop_probability`` share of the images) a random crop
    containing the whole object box, resized back (see :func:`protoviz.train.data.augment`); both keep
    every class rule of the synthetic data (no colour change, no part cropped away).
    ``device``: "auto" (CUDA, then MPS, then CPU) or a torch device string.
    """

    pretrain_epochs: int = 0
    warm_epochs: int = 5
    joint_epochs: int = 10
    last_layer_epochs: int = 5
    push_every: int = 0
    batch_size: int = 32
    pretrain_lr: float = 3e-3
    warm_lr: float = 3e-3
    features_lr: float = 1e-3
    add_on_lr: float = 3e-3
    prototype_lr: float = 3e-3
    last_layer_lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_step: int = 5
    lr_gamma: float = 0.5
    cross_entropy: float = 1.0
    cluster: float = 0.8
    separation: float = 0.08
    l1: float = 1e-4
    support_closeness: float = 0.1
    augment: bool = True
    crop_probability: float = 0.5
    seed: int = 0
    device: str = "auto"
    push_batch_size: int = 64
    image_thumbnail: int = 96
    patch_thumbnail: int = 64

    def __post_init__(self) -> None:
        counts = {"pretrain_epochs": self.pretrain_epochs, "warm_epochs": self.warm_epochs,
                  "joint_epochs": self.joint_epochs,
                  "last_layer_epochs": self.last_layer_epochs, "push_every": self.push_every,
                  "seed": self.seed}
        for name, value in counts.items():
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"TrainConfig.{name}: expected an integer >= 0, got {value!r}")
        positive = {"batch_size": self.batch_size, "lr_step": self.lr_step, "push_batch_size": self.push_batch_size,
                    "image_thumbnail": self.image_thumbnail, "patch_thumbnail": self.patch_thumbnail}
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"TrainConfig.{name}: expected an integer >= 1, got {value!r}")
        rates = {"pretrain_lr": self.pretrain_lr, "warm_lr": self.warm_lr, "features_lr": self.features_lr,
                 "add_on_lr": self.add_on_lr,
                 "prototype_lr": self.prototype_lr, "last_layer_lr": self.last_layer_lr}
        for name, rate in rates.items():
            if not rate > 0:
                raise ConfigError(f"TrainConfig.{name}: expected a learning rate > 0, got {rate!r}")
        non_negative = {"weight_decay": self.weight_decay, "cross_entropy": self.cross_entropy,
                        "cluster": self.cluster, "separation": self.separation, "l1": self.l1,
                        "support_closeness": self.support_closeness}
        for name, weight in non_negative.items():
            if not weight >= 0:
                raise ConfigError(f"TrainConfig.{name}: expected a value >= 0, got {weight!r}")
        if not 0 <= self.crop_probability <= 1:
            raise ConfigError(f"TrainConfig.crop_probability: expected a value in [0, 1], "
                              f"got {self.crop_probability!r}")
        if not 0 < self.lr_gamma <= 1:
            raise ConfigError(f"TrainConfig.lr_gamma: expected a value in (0, 1], got {self.lr_gamma!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated again); unknown names raise ConfigError."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"TrainConfig has no fields {sorted(unknown)}")
        return dataclasses.replace(self, **changes)


_FROM_SCRATCH = TrainConfig(pretrain_epochs=10, warm_epochs=2, joint_epochs=15, last_layer_epochs=5, batch_size=32,
                            features_lr=1e-3, lr_step=8, lr_gamma=0.3, crop_probability=0.3)

PRESETS: dict[str, TrainConfig] = {
    "default": _FROM_SCRATCH,
    "quick": TrainConfig(pretrain_epochs=1, warm_epochs=1, joint_epochs=2, last_layer_epochs=1, batch_size=16),
    # the demo models of protoviz.train.demo (tuned on the synthetic birds, 128 px)
    "demo_tinycnn_log": _FROM_SCRATCH.replace(pretrain_epochs=15, seed=2),
    "demo_resnet18l3_cosine": _FROM_SCRATCH.replace(pretrain_epochs=10, joint_epochs=12, lr_step=6,
                                                    last_layer_epochs=10, support_closeness=0.1, image_thumbnail=80),
}


def preset(name: str) -> TrainConfig:
    """A named TrainConfig from PRESETS."""
    if name not in PRESETS:
        raise ConfigError(f"unknown training preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]

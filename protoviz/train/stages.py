"""ProtoPNet's training stages: which parameters each stage trains, and one epoch of each.

- pre-training (optional, not in ProtoPNet): the backbone with a temporary global-average-pool + linear
  head and cross-entropy, a stand-in for the ImageNet weights ProtoPNet starts from (nothing may be
  downloaded here); the temporary head is discarded;
- warm-up: add-on layers and prototypes (backbone and last layer frozen);
- joint: backbone, add-on layers and prototypes (last layer frozen);
- last layer: only the last layer(s), with CE + L1 on off-class weights; the rest of the model is in
  eval mode, so its batch-norm statistics do not move either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from protoviz.data.transforms import normalize
from protoviz.models.protopnet import ProtoPNet
from protoviz.progress import Progress
from protoviz.train.config import TrainConfig
from protoviz.train.data import ImageTensors, augment, to_model_input, to_unit
from protoviz.train.losses import off_class_l1, protopnet_loss

STAGES = ("pretrain", "warm", "joint", "last_layer")


@dataclass(frozen=True)
class EpochStats:
    """Means over one epoch of the loss terms, and the training accuracy (on augmented images)."""

    stage: str
    epoch: int
    loss: float
    cross_entropy: float
    cluster: float
    separation: float
    l1: float
    accuracy: float
    val_accuracy: float | None = None

    def line(self) -> str:
        val = "" if self.val_accuracy is None else f" val {self.val_accuracy:.3f}"
        return (f"{self.stage} epoch {self.epoch}: loss {self.loss:.4f} ce {self.cross_entropy:.4f} "
                f"clst {self.cluster:.4f} sep {self.separation:.4f} l1 {self.l1:.2f} acc {self.accuracy:.3f}{val}")


def _set_modules(model: ProtoPNet, kind: str) -> list[nn.Module | nn.Parameter]:
    position = {"add_on": 0, "prototypes": 1, "last": 2}[kind]
    # positions 0-2 are the add-on module, the prototype parameter and the last layer (3, a buffer, is never asked for)
    return [cast(nn.Module | nn.Parameter, model._set_parts(name)[position]) for name in model.config.prototype_sets]


def _params(items: list[nn.Module | nn.Parameter]) -> list[nn.Parameter]:
    out: list[nn.Parameter] = []
    for item in items:
        out.extend([item] if isinstance(item, nn.Parameter) else list(item.parameters()))
    return out


def trainable_groups(model: ProtoPNet, stage: str, config: TrainConfig) -> list[dict]:
    """Adam parameter groups of ``stage`` (ProtoPNet: weight decay on convolutions, none on prototypes)."""
    add_on = {"params": _params(_set_modules(model, "add_on")), "weight_decay": config.weight_decay}
    protos = {"params": _params(_set_modules(model, "prototypes")), "weight_decay": 0.0}
    if stage == "warm":
        return [{**add_on, "lr": config.warm_lr}, {**protos, "lr": config.warm_lr}]
    if stage == "joint":
        features = {"params": list(model.features.parameters()), "weight_decay": config.weight_decay,
                    "lr": config.features_lr}
        return [features, {**add_on, "lr": config.add_on_lr}, {**protos, "lr": config.prototype_lr}]
    return [{"params": _params(_set_modules(model, "last")), "lr": config.last_layer_lr, "weight_decay": 0.0}]


def freeze_for(model: ProtoPNet, stage: str) -> None:
    """Set ``requires_grad`` so that only the parameters ``stage`` trains get gradients."""
    trained = {id(p) for p in _params(_set_modules(model, "add_on") + _set_modules(model, "prototypes"))}
    if stage == "joint":
        trained |= {id(p) for p in model.features.parameters()}
    if stage == "last_layer":
        trained = {id(p) for p in _params(_set_modules(model, "last"))}
    for p in model.parameters():
        p.requires_grad_(id(p) in trained)


def shuffled_batches(data: ImageTensors, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Index tensors (B,) of one epoch in a seeded random order."""
    order = torch.randperm(len(data), generator=generator)
    yield from order.split(batch_size)


def train_epoch(model: ProtoPNet, data: ImageTensors, optimizer: torch.optim.Optimizer, stage: str, epoch: int,
                config: TrainConfig, generator: torch.Generator, progress: Progress | None = None) -> EpochStats:
    """One epoch of the warm-up or joint stage (augmented, model in train mode)."""
    model.train()
    freeze_for(model, stage)
    sums = torch.zeros(6, dtype=torch.float64)
    steps = (len(data) + config.batch_size - 1) // config.batch_size
    for step, index in enumerate(shuffled_batches(data, config.batch_size, generator)):
        unit, labels = training_batch(data, index, model, config, generator)
        terms = protopnet_loss(model, normalize(unit, model.input_spec), labels, config.cluster, config.separation,
                               0.0, config.support_closeness, config.cross_entropy)
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        optimizer.step()
        correct = (terms.logits.argmax(dim=1) == labels).sum()
        values = torch.stack([terms.total, terms.cross_entropy, terms.cluster, terms.separation, terms.l1,
                              correct / len(index)]).detach().double().cpu()
        sums += values * len(index)
        if progress is not None:
            progress(step + 1, steps, stage)
    loss, ce, cluster, sep, l1, acc = (sums / len(data)).tolist()
    return EpochStats(stage, epoch, loss, ce, cluster, sep, l1, acc)


def training_batch(data: ImageTensors, index: Tensor, model: ProtoPNet, config: TrainConfig,
                   generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Images (B, 3, H, W) in [0, 1], augmented if configured, and labels (B,) on the model's device."""
    unit = to_unit(data.images[index], model)
    if config.augment:
        boxes = data.boxes[index] if data.boxes is not None else None
        unit = augment(unit, boxes, generator, config.crop_probability)
    return unit, data.labels[index].to(model.device)


def backbone_channels(model: ProtoPNet) -> int:
    """Channels of the backbone's output: the input channels of the first add-on convolution."""
    add_on = model._set_parts(model.config.prototype_sets[0])[0]
    return next(m for m in add_on.modules() if isinstance(m, nn.Conv2d)).in_channels


def pretrain_backbone(model: ProtoPNet, data: ImageTensors, config: TrainConfig, generator: torch.Generator,
                      progress: Progress | None = None, record: Callable[[EpochStats], None] | None = None) -> None:
    """The pre-training stage: ``config.pretrain_epochs`` of backbone + temporary GAP-linear head with CE."""
    if config.pretrain_epochs == 0:
        return
    device = model.device
    head = nn.Linear(backbone_channels(model), model.num_classes).to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.features.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam([{"params": list(model.features.parameters()), "weight_decay": config.weight_decay},
                                  {"params": list(head.parameters()), "weight_decay": 0.0}], lr=config.pretrain_lr)
    steps = (len(data) + config.batch_size - 1) // config.batch_size
    for epoch in range(config.pretrain_epochs):
        model.train()
        sums = torch.zeros(2, dtype=torch.float64)
        for step, index in enumerate(shuffled_batches(data, config.batch_size, generator)):
            unit, labels = training_batch(data, index, model, config, generator)
            logits = head(model.features(normalize(unit, model.input_spec)).mean(dim=(2, 3)))
            loss = nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            acc = (logits.argmax(dim=1) == labels).double().mean()
            sums += torch.stack([loss.detach().double(), acc]).cpu() * len(index)
            if progress is not None:
                progress(step + 1, steps, "pretrain")
        loss_m, acc_m = (sums / len(data)).tolist()
        if record is not None:
            record(EpochStats("pretrain", epoch, loss_m, loss_m, 0.0, 0.0, 0.0, acc_m))
    for p in model.parameters():
        p.requires_grad_(True)


@torch.no_grad()
def pooled_similarities(model: ProtoPNet, data: ImageTensors, batch_size: int) -> Tensor:
    """Max-pooled similarities (N, P) of every image (eval mode, no augmentation)."""
    model.eval()
    parts = [model(to_model_input(data.images[start:start + batch_size], model))
             .max_similarities for start in range(0, len(data), batch_size)]
    return torch.cat(parts)


def train_last_layer(model: ProtoPNet, data: ImageTensors, config: TrainConfig, generator: torch.Generator,
                     progress: Progress | None = None) -> list[EpochStats]:
    """The last-layer stage: CE + ``l1`` * L1(off-class weights), on the pooled similarities computed once."""
    freeze_for(model, "last_layer")
    pooled = pooled_similarities(model, data, config.push_batch_size)
    labels = data.labels.to(model.device)
    optimizer = torch.optim.Adam(trainable_groups(model, "last_layer", config))
    history = []
    steps = (len(data) + config.batch_size - 1) // config.batch_size
    for epoch in range(config.last_layer_epochs):
        sums = torch.zeros(3, dtype=torch.float64)
        for step, index in enumerate(shuffled_batches(data, config.batch_size, generator)):
            index = index.to(model.device)
            logits = pooled[index] @ model.class_weights.t()  # ProtoPNet's linear head on pooled similarities
            ce = nn.functional.cross_entropy(logits, labels[index])
            l1 = off_class_l1(model)
            loss = config.cross_entropy * ce + config.l1 * l1
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            acc = (logits.argmax(dim=1) == labels[index]).double().mean()
            sums += torch.stack([loss.detach().double(), ce.detach().double(), acc]).cpu() * len(index)
            if progress is not None:
                progress(step + 1, steps, "last_layer")
        loss_m, ce_m, acc_m = (sums / len(data)).tolist()
        history.append(EpochStats("last_layer", epoch, loss_m, ce_m, 0.0, 0.0,
                                  float(off_class_l1(model).detach()), acc_m))
    for p in model.parameters():
        p.requires_grad_(True)
    return history

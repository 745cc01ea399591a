"""Run ProtoPNet's schedule: warm-up -> joint (with optional periodic push) -> push -> last layer."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import torch

from protoviz.device import pick_device
from protoviz.models.base import PrototypeSource
from protoviz.models.protopnet import ProtoPNet
from protoviz.progress import Progress, ProgressTracker, format_seconds
from protoviz.train.config import TrainConfig
from protoviz.train.data import ImageTensors, to_model_input
from protoviz.train.push import push_prototypes
from protoviz.train.stages import EpochStats, pretrain_backbone, train_epoch, train_last_layer, trainable_groups

LogFn = Callable[[str], None]


@dataclass
class TrainResult:
    """What a training run did: per-epoch statistics, the prototype sources of the last push, timing."""

    history: list[EpochStats] = field(default_factory=list)
    sources: list[PrototypeSource | None] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"

    def summary(self) -> dict[str, object]:
        """JSON-able record of the run."""
        last = self.history[-1] if self.history else None
        return {"seconds": round(self.seconds, 1), "device": self.device, "epochs": len(self.history),
                "final_train_accuracy": round(last.accuracy, 4) if last else None,
                "history": [s.line() for s in self.history]}


class ProgressPrinter:
    """A one-line progress bar with rate and time left on a stream, a :class:`~protoviz.progress.Progress`
    (``progress(done, total, stage)``); ``log(line)`` ends the line."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 30):
        self.stream = stream
        self.width = width
        self._tracker = ProgressTracker()

    def __call__(self, done: int, total: int | None, stage: str = "") -> None:
        self._tracker(done, total, stage)
        reading = self._tracker.last
        total = total or done
        filled = self.width * done // max(total, 1)
        rate = "" if reading is None or reading.rate is None else f" {reading.rate:.1f}/s"
        left = "" if reading is None or reading.eta_s is None else f" {format_seconds(reading.eta_s)} left"
        self.stream.write(f"\r{stage:<10} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}{rate}{left}")
        self.stream.flush()

    def log(self, line: str) -> None:
        self.stream.write("\r" + line + " " * 20 + "\n")
        self.stream.flush()


def train_protopnet(model: ProtoPNet, data: ImageTensors, config: TrainConfig, progress: Progress | None = None,
                    log: LogFn | None = None, validation: ImageTensors | None = None) -> TrainResult:
    """Train ``model`` on ``data`` through ProtoPNet's stages; the model ends pushed, in eval mode, on the
    configured device, with ``prototype_sources`` set (when at least one push ran).

    With ``validation``, each epoch's record also holds the accuracy on it (eval mode, after the epoch).
    """
    device = pick_device(config.device)
    model.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    result = TrainResult(device=str(device))
    start = time.perf_counter()

    def record(stats: EpochStats) -> None:
        if validation is not None:
            stats = dataclasses.replace(stats, val_accuracy=accuracy(model, validation, config.push_batch_size))
        result.history.append(stats)
        if log is not None:
            log(stats.line())

    pretrain_backbone(model, data, config, generator, progress, record)
    warm = torch.optim.Adam(trainable_groups(model, "warm", config))
    for epoch in range(config.warm_epochs):
        record(train_epoch(model, data, warm, "warm", epoch, config, generator, progress))
    joint = torch.optim.Adam(trainable_groups(model, "joint", config))
    schedule = torch.optim.lr_scheduler.StepLR(joint, step_size=config.lr_step, gamma=config.lr_gamma)
    pushed_at = -1
    for epoch in range(config.joint_epochs):
        record(train_epoch(model, data, joint, "joint", epoch, config, generator, progress))
        schedule.step()
        if config.push_every and (epoch + 1) % config.push_every == 0:
            result.sources = _push_and_tune(model, data, config, generator, progress, record)
            pushed_at = epoch
    if pushed_at != config.joint_epochs - 1 or config.joint_epochs == 0:
        result.sources = _push_and_tune(model, data, config, generator, progress, record)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    result.seconds = time.perf_counter() - start
    return result


def _push_and_tune(model: ProtoPNet, data: ImageTensors, config: TrainConfig, generator: torch.Generator,
                   progress: Progress | None, record: Callable[[EpochStats], None]) -> list[PrototypeSource | None]:
    sources = push_prototypes(model, data, config.push_batch_size, config.image_thumbnail, config.patch_thumbnail,
                              progress)
    for stats in train_last_layer(model, data, config, generator, progress):
        record(stats)
    return sources


@torch.no_grad()
def predict(model: ProtoPNet, data: ImageTensors, batch_size: int = 64) -> torch.Tensor:
    """Predicted class indices (N,) in eval mode, without augmentation."""
    model.eval()
    out = [model(to_model_input(data.images[s:s + batch_size], model)).logits.argmax(1)
           for s in range(0, len(data), batch_size)]
    return torch.cat(out).cpu()


def accuracy(model: ProtoPNet, data: ImageTensors, batch_size: int = 64) -> float:
    """Top-1 accuracy on ``data``."""
    return float((predict(model, data, batch_size) == data.labels).double().mean())

"""Sharding a pass over the processes of a ``torchrun`` job, through ``torch.distributed``.

protoviz schedules nothing across machines itself: ``torchrun`` starts the processes (one per GPU, or
several on a CPU) and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address;
:func:`join` opens the process group (gloo on CPU, NCCL on CUDA, chosen by the device).

A pass is split by whole batches: the dataset positions are cut into batches of ``batch_size`` exactly
as one process would, and rank r takes batches r, r + N, r + 2N, ... (:meth:`ShardGroup.take`). Every
image is thus forwarded in the same batch as in a single-process run, so the per-image results are
bit-identical. After the pass each rank sends its consumers (their states moved to the CPU) to rank 0,
which merges them in rank order (``consumer.merge(other)``) and writes the one result.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from protoviz.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class ShardGroup:
    """This process's place in a torchrun job: ``rank`` of ``world_size``, running on ``device``."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 merges the shards and writes the result."""
        return self.rank == 0

    def take(self, items: Sequence[T], batch_size: int) -> list[T]:
        """This rank's share of ``items``: whole batches of ``batch_size``, every ``world_size``-th batch."""
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        batches = [items[s:s + batch_size] for s in range(0, len(items), batch_size)]
        return [item for batch in batches[self.rank::self.world_size] for item in batch]

    def merge(self, consumers: Sequence[Any], images: int) -> int:
        """Merge every rank's ``consumers`` into rank 0's (in rank order); returns the images of all ranks.
        Other ranks' consumers are left as they were (their results are not used)."""
        payload = ([cpu_copy(c) for c in consumers], images)
        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(payload, gathered, dst=0)
        if gathered is None:
            return images
        total = images
        for rank in range(1, self.world_size):
            others, count = gathered[rank]
            for mine, other in zip(consumers, others, strict=True):
                mine.merge(other)
            total += count
        return total


def cpu_copy(consumer: T) -> T:
    """A shallow copy of ``consumer`` whose tensor attributes (also inside dicts, lists, tuples) are on the
    CPU, ready to pickle to another rank."""
    clone = copy.copy(consumer)
    for name, value in vars(clone).items():
        setattr(clone, name, _to_cpu(value))
    return clone


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_to_cpu(v) for v in value)
    return value


def launched_by_torchrun() -> bool:
    """True inside a process started by torchrun with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device_preference: str | None = None) -> ShardGroup | None:
    """Open the process group of a torchrun job (None when not launched with several ranks).

    The device: ``cuda:LOCAL_RANK`` when CUDA is wanted and present (NCCL), else the CPU (gloo);
    ``device_preference`` 'cpu' forces gloo on the CPU even on a GPU machine.
    """
    if not launched_by_torchrun():
        return None
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    wants_cuda = device_preference in (None, "auto", "cuda") or str(device_preference).startswith("cuda")
    if wants_cuda and torch.cuda.is_available():
        device = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(device)
        backend = "nccl"
    elif str(device_preference).startswith("cuda"):
        raise ConfigError("a CUDA device was requested but no GPU is available; use --device cpu")
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world, **kwargs)
    return ShardGroup(rank, world, device)


def leave(group: ShardGroup | None) -> None:
    """Close the process group opened by :func:`join` (no-op without one)."""
    if group is not None and dist.is_initialized():
        dist.destroy_process_group()


def run_in_group(device_preference: str | None, body: Callable[[ShardGroup | None], int]) -> int:
    """``body(group)`` inside the torchrun job's process group (``None`` without torchrun), closed after:
    the one entry of every command that shards."""
    group = join(device_preference)
    try:
        return body(group)
    finally:
        leave(group)

"""A model shared by two sessions: a long pass takes the lock per batch, so the other session's request
runs between two batches; a wait that lasts too long ends with a clear ModelBusy."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from torch import Tensor

from protoviz.compare.scan import tensor_batches
from protoviz.locking import ModelBusy, ModelLock
from protoviz.models.protopnet import ProtoPNet
from protoviz.passes import Needs, PassStep, run_pass
from tests.conftest import make_tiny_model


class Slow(ProtoPNet):
    """The tiny ProtoPNet taking ``delay`` seconds per forward and logging when each forward ran."""

    delay = 0.05

    def set_latents(self, x: Tensor) -> dict[str, Tensor]:
        self.log.append(("pass", time.monotonic()))
        time.sleep(self.delay)
        return super().set_latents(x)


class Nothing:
    needs = Needs()

    def update(self, step: PassStep) -> None: ...

    def merge(self, other: Nothing) -> None: ...

    def result(self) -> None: ...


def slow_model() -> Slow:
    model = make_tiny_model()
    model.__class__ = Slow
    model.log = []  # type: ignore[attr-defined]
    return model  # type: ignore[return-value]


def test_a_second_session_runs_between_the_batches_of_a_long_pass() -> None:
    model, lock = slow_model(), ModelLock("tiny", timeout_s=30)
    started = threading.Event()

    def long_pass() -> None:
        started.set()
        run_pass(model, tensor_batches(torch.randn(20, 3, 64, 64), 1), [Nothing()], lock=lock)  # 20 batches

    worker = threading.Thread(target=long_pass)
    worker.start()
    started.wait()
    time.sleep(3 * model.delay)  # the pass is under way
    with lock:  # what another session's single explanation does
        model.log.append(("other", time.monotonic()))
        with torch.no_grad():
            model(torch.randn(1, 3, 64, 64))
    worker.join()
    order = [who for who, _ in model.log]
    other = order.index("other")
    assert 0 < other < len(order) - 2 and order.count("pass") == 21  # served mid-pass, not after it


def test_a_wait_longer_than_the_timeout_says_the_model_is_busy() -> None:
    lock = ModelLock("model 'tiny'", timeout_s=0.2)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait()
    start = time.monotonic()
    with pytest.raises(ModelBusy, match="model 'tiny' has been busy with another request"), lock:
        pass
    assert time.monotonic() - start < 2
    release.set()
    thread.join()
    with lock:  # free again
        assert lock.locked()
    assert not lock.locked()
    with pytest.raises(ValueError):
        ModelLock(timeout_s=0)


def test_the_dashboard_models_carry_a_model_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cache import LoadedModel, lock_timeout

    monkeypatch.setenv("PROTOVIZ_LOCK_TIMEOUT", "7.5")
    assert lock_timeout() == 7.5
    monkeypatch.setenv("PROTOVIZ_LOCK_TIMEOUT", "nonsense")
    assert lock_timeout() == 120.0
    assert isinstance(LoadedModel.__dataclass_fields__["lock"].default_factory(), ModelLock)  # type: ignore[misc]

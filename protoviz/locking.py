"""A model lock whose waits end: sessions sharing one loaded model take turns batch by batch.

A dashboard process loads each model once and shares it between sessions. Whoever runs the model holds
its :class:`ModelLock`; dataset passes take it around each batch (``run_pass(..., lock=...)``), not for
the whole pass, so a second session's request waits at most about one batch. A wait never lasts
forever: after ``timeout_s`` it raises :class:`ModelBusy` with a message a person understands.

Pure Python (no torch).
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self

from protoviz.errors import ProtovizError

DEFAULT_TIMEOUT_S = 120.0


class ModelBusy(ProtovizError):
    """The model stayed busy with other work for longer than the wait allowed."""


class ModelLock:
    """A mutex with a bounded wait. ``with lock:`` waits at most ``timeout_s`` seconds, then raises
    :class:`ModelBusy`; ``acquire``/``release``/``locked`` behave like :class:`threading.Lock`'s.

    ``name`` appears in the message (e.g. the model's display name).
    """

    def __init__(self, name: str = "the model", timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.name, self.timeout_s = name, timeout_s
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> Self:
        if not self._lock.acquire(timeout=self.timeout_s):
            raise ModelBusy(f"{self.name} has been busy with another request for over {self.timeout_s:.0f} s; "
                            "try again in a moment")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._lock.release()

"""The one progress protocol of protoviz, with cancellation and a rate / time-left estimate.

Every long computation (a pass over a dataset, a job, a training stage) takes an optional
``progress: Progress`` and calls it as ``progress(done, total, stage)`` after each unit of work
(usually a batch of images). ``total`` is None when the length is unknown. A caller stops the work
by raising :class:`Cancelled` from its progress callback (what :class:`CancelToken` does), so the
work needs no extra plumbing to be stoppable.

Pure Python, no torch: the command line imports it before deciding whether torch is needed.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TextIO

from protoviz.errors import ProtovizError


class Progress(Protocol):
    """Called after each unit of work: ``done`` units out of ``total`` (None = unknown) in ``stage``."""

    def __call__(self, done: int, total: int | None, stage: str = "") -> None: ...


class Cancelled(ProtovizError):
    """The user (or a job's Stop button) asked the running computation to stop."""


def no_progress(done: int, total: int | None, stage: str = "") -> None:
    """A :class:`Progress` that does nothing."""


class CancelToken:
    """A thread-safe stop flag. ``check()`` raises :class:`Cancelled` once ``cancel()`` was called."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("stopped on request")


@dataclass(frozen=True)
class ProgressReading:
    """One reading of a running computation: where it is, how fast it goes and what is left.

    ``rate`` is units per second since the stage started (None before the first unit);
    ``eta_s`` the estimated seconds left (None when ``total`` or ``rate`` is unknown).
    """

    done: int
    total: int | None
    stage: str
    elapsed_s: float
    rate: float | None
    eta_s: float | None

    @property
    def fraction(self) -> float | None:
        """``done / total`` clipped to [0, 1], or None when the total is unknown."""
        if not self.total:
            return None
        return min(1.0, max(0.0, self.done / self.total))

    def describe(self, unit: str = "images") -> str:
        """E.g. ``'stability: 128/512 images · 41.3 images/s · 9 s left'``."""
        count = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        parts = [f"{self.stage + ': ' if self.stage else ''}{count} {unit}"]
        if self.rate is not None:
            parts.append(f"{self.rate:.1f} {unit}/s")
        if self.eta_s is not None:
            parts.append(f"{format_seconds(self.eta_s)} left")
        return " · ".join(parts)


def format_seconds(seconds: float) -> str:
    """``'9 s'``, ``'3 min 05 s'``, ``'1 h 02 min'``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ProgressTracker:
    """A :class:`Progress` that measures rate and time left per stage and forwards a reading.

    ``sink`` receives a :class:`ProgressReading` after every call; ``cancel`` (optional) is checked
    on every call, so a tracker wired to a job's token stops the work at the next unit.
    """

    def __init__(self, sink: Callable[[ProgressReading], None] | None = None,
                 cancel: CancelToken | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._sink = sink
        self._cancel = cancel
        self._clock = clock
        self._stage: str | None = None
        self._start = clock()
        self.last: ProgressReading | None = None

    def __call__(self, done: int, total: int | None, stage: str = "") -> None:
        if self._cancel is not None:
            self._cancel.check()
        now = self._clock()
        if self._stage is None:
            self._stage = stage  # the first stage runs from construction
        elif stage != self._stage:
            self._stage, self._start = stage, now
        elapsed = now - self._start
        rate = done / elapsed if done > 0 and elapsed > 0 else None
        eta = (total - done) / rate if rate and total is not None else None
        self.last = ProgressReading(done, total, stage, elapsed, rate, eta)
        if self._sink is not None:
            self._sink(self.last)


def console_progress(stream: TextIO | None = None, unit: str = "images") -> ProgressTracker:
    """A tracker printing one updating line (rate and time left) to ``stream`` (default stderr)."""
    out = stream if stream is not None else sys.stderr
    interactive = out.isatty()

    def show(reading: ProgressReading) -> None:
        line = reading.describe(unit)
        finished = reading.total is not None and reading.done >= reading.total
        if interactive:
            out.write("\r\033[K" + line + ("\n" if finished else ""))
        elif finished or reading.done == 0:
            out.write(line + "\n")
        out.flush()

    return ProgressTracker(show)

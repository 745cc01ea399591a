"""Run one hostile input in a child process with a memory limit and a timeout, and report what happened.

Children come from a ``forkserver`` that has imported torch and protoviz once, so each case starts in a
fresh process in tens of milliseconds. In the child the address-space limit is set to its current size
plus ``budget`` bytes (an allocation beyond that fails instead of swapping the machine), the peak
resident size is reset, the target runs, and the child reports: the exception class and message (or
"ok"), the growth of its peak resident memory, and the time taken. The parent kills a child that does
not answer within ``timeout`` seconds (reported as a hang).
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

TIMEOUT_S = 40.0
BUDGET = 1536 << 20  # address space a case may add
RESULTS: list[tuple[str, str, str, float, float]] = []  # (attack class, case, outcome, growth MB, seconds)
_CONTEXT: list[Any] = []


@dataclass(frozen=True)
class Outcome:
    """What one case did: ``status`` is 'error', 'ok', 'hang' or 'crash'."""

    status: str
    error: str
    message: str
    growth_mb: float
    seconds: float

    def label(self) -> str:
        if self.status == "error":
            return f"refused ({self.error})"
        return "handled (loaded correctly)" if self.status == "ok" else self.status


def _context() -> Any:
    if not _CONTEXT:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["torch", "torchvision", "protoviz.models", "protoviz.data.datasets",
                                        "protoviz.cli", "tests.security.targets"])
        _CONTEXT.append(context)
    return _CONTEXT[0]


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _child(conn: Connection, target: Callable[..., Any], args: tuple[Any, ...], budget: int) -> None:
    size, start_rss = _status_kb("VmSize") * 1024, _status_kb("VmRSS")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + budget
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset VmHWM to the current resident size
    except OSError:
        pass
    begin = time.perf_counter()
    try:
        value = target(*args)
        status, error, message = "ok", "", repr(value)[:2000]
    except BaseException as failure:  # noqa: BLE001 - everything is reported to the parent
        status, error, message = "error", type(failure).__name__, str(failure)[:4000]
    growth = max(0, _status_kb("VmHWM") - start_rss) / 1024
    conn.send(Outcome(status, error, message, growth, time.perf_counter() - begin))
    conn.close()


def run_case(target: Callable[..., Any], *args: Any, timeout: float = TIMEOUT_S, budget: int = BUDGET) -> Outcome:
    """``target(*args)`` in a fresh child process (see the module docstring)."""
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, target, args, budget), daemon=True)
    begin = time.perf_counter()
    process.start()
    sender.close()
    try:
        if receiver.poll(timeout):
            outcome: Outcome = receiver.recv()
        else:
            outcome = Outcome("hang", "", f"no answer within {timeout:.0f} s", 0.0, timeout)
    except EOFError:
        outcome = Outcome("crash", "", f"the child died (exit code {process.exitcode})", 0.0,
                          time.perf_counter() - begin)
    finally:
        if process.is_alive():
            process.kill()
        process.join(10)
    return outcome

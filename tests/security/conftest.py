"""Prints the hostile suite's outcomes by attack class at the end of the run."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.app.conftest import app_env, model_dir, sample_dir  # noqa: F401 - fixtures for the AppTests here
from tests.security import harness


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not harness.RESULTS:
        return
    write = terminalreporter.write_line
    write("")
    write(f"hostile inputs: {len(harness.RESULTS)} cases")
    for (attack, outcome), count in sorted(Counter((r[0], r[2]) for r in harness.RESULTS).items()):
        write(f"  {attack:32s} {outcome:34s} {count}")
    totals = Counter(r[2] for r in harness.RESULTS)
    write("  total: " + ", ".join(f"{outcome} {count}" for outcome, count in sorted(totals.items())))
    biggest = sorted(harness.RESULTS, key=lambda r: -r[3])[:3]
    write("  largest peak-memory growth: " + "; ".join(f"{r[1]} {r[3]:.0f} MB" for r in biggest))
    slowest = sorted(harness.RESULTS, key=lambda r: -r[4])[:3]
    write("  slowest: " + "; ".join(f"{r[1]} {r[4]:.1f} s" for r in slowest))

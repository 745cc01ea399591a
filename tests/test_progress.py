"""The shared progress protocol: rate, time left, per-stage restart, cancellation."""

from __future__ import annotations

import io

import pytest

from protoviz.progress import Cancelled, CancelToken, ProgressReading, ProgressTracker, console_progress, format_seconds


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_and_time_left_from_the_clock() -> None:
    clock = FakeClock()
    readings: list[ProgressReading] = []
    tracker = ProgressTracker(readings.append, clock=clock)
    tracker(0, 100, "scan")
    assert readings[-1].rate is None and readings[-1].eta_s is None
    clock.now += 10
    tracker(20, 100, "scan")
    assert readings[-1].rate == pytest.approx(2.0)
    assert readings[-1].eta_s == pytest.approx(40.0)
    assert readings[-1].fraction == pytest.approx(0.2)


def test_a_new_stage_restarts_the_rate() -> None:
    clock = FakeClock()
    tracker = ProgressTracker(clock=clock)
    tracker(0, 10, "a")
    clock.now += 100
    tracker(10, 10, "a")
    tracker(0, 10, "b")
    clock.now += 1
    tracker(5, 10, "b")
    assert tracker.last is not None and tracker.last.rate == pytest.approx(5.0)


def test_unknown_total_has_no_time_left() -> None:
    clock = FakeClock()
    tracker = ProgressTracker(clock=clock)
    clock.now += 2
    tracker(4, None)
    assert tracker.last is not None
    assert tracker.last.eta_s is None and tracker.last.fraction is None
    assert "2.0 images/s" in tracker.last.describe()


def test_cancel_token_stops_at_the_next_call() -> None:
    token = CancelToken()
    tracker = ProgressTracker(cancel=token)
    tracker(1, 3)
    token.cancel()
    with pytest.raises(Cancelled):
        tracker(2, 3)


def test_console_progress_prints_rate_and_final_line() -> None:
    out = io.StringIO()
    tracker = console_progress(out)
    tracker(0, 2, "eval")
    tracker(2, 2, "eval")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("eval: 0/2 images")
    assert lines[-1].startswith("eval: 2/2 images")


@pytest.mark.parametrize(("seconds", "text"), [(9.4, "9 s"), (185, "3 min 05 s"), (3720, "1 h 02 min"), (-1, "0 s")])
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text

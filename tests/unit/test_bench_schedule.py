from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcfw.bench.schedule import OpenLoopSchedule, latency_from_intended, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("500ms", 0.5),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        ("1.5", 1.5),
        ("250us", 250e-6),
        (" 3s ", 3.0),
        ("1m0.5s", 60.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10q", "s", "ten seconds", "10s5", "-1s", "0", "-3", "nan"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@given(
    st.floats(min_value=0.5, max_value=100_000),
    st.floats(min_value=0, max_value=1000),
    st.integers(min_value=1, max_value=300),
)
def test_intended_times_are_evenly_spaced(rate: float, start: float, total: int) -> None:
    schedule = OpenLoopSchedule(rate, start, total=total)
    times = []
    while (when := schedule.take()) is not None:
        times.append(when)
    assert len(times) == total == schedule.issued
    assert times[0] == start
    for index, (a, b) in enumerate(itertools.pairwise(times)):
        assert b - a == pytest.approx(1 / rate, rel=1e-6, abs=1e-9)
        assert b == pytest.approx(start + (index + 1) / rate, rel=1e-9, abs=1e-9)


def test_schedule_stops_at_its_end() -> None:
    schedule = OpenLoopSchedule(200, start=10.0, end=11.0)
    times = []
    while (when := schedule.take()) is not None:
        times.append(when)
    assert len(times) == 200
    assert times[-1] < 11.0


def test_latency_counts_from_the_intended_time() -> None:
    """A call due at t=1.00 that a busy worker only sent at t=1.30 and that came back at
    t=1.31 took 310 ms for the user, not 10 ms (coordinated omission)."""
    schedule = OpenLoopSchedule(rate=100, start=1.0)
    due = schedule.take()
    assert due == 1.0
    sent, done = 1.30, 1.31
    assert latency_from_intended(due, done) == pytest.approx(0.31)
    assert done - sent == pytest.approx(0.01)
    assert schedule.take() == pytest.approx(1.01)
    assert latency_from_intended(2.0, 1.9) == 0.0


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        OpenLoopSchedule(0, 0.0)

"""Open-loop scheduling and duration parsing.

With a fixed ``--rate``, call ``i`` is *intended* to start at ``start + i / rate`` whether or
not earlier calls have finished. Its latency is measured from that intended time, not from when
a worker got round to sending it, so a server that stalls is charged for the queueing it causes
(no coordinated omission: a closed-loop tool would quietly send less and report fine latencies).
"""

from __future__ import annotations

import math
import re

__all__ = ["OpenLoopSchedule", "format_duration", "latency_from_intended", "parse_duration"]

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """``10s``, ``500ms``, ``1m30s``, ``2h``, ``1.5`` (seconds) -> seconds (> 0).

    Raises ValueError naming the problem.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty duration")
    try:
        seconds = float(value)
    except ValueError:
        position, seconds = 0, 0.0
        while position < len(value):
            match = _PART.match(value, position)
            if match is None:
                raise ValueError(
                    f"malformed duration {text!r}: expected e.g. 10s, 500ms, 1m30s"
                ) from None
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            position = match.end()
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return seconds


def format_duration(seconds: float) -> str:
    """``seconds`` in the unit that reads best: µs, ms or s."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f}ms"
    return f"{seconds:.2f}s"


def latency_from_intended(intended: float, done: float) -> float:
    """Latency charged to a call: completion minus *intended* start (never negative)."""
    return max(0.0, done - intended)


class OpenLoopSchedule:
    """Intended send times at a fixed rate, handed out in order to any number of workers.

    ``take()`` returns the next intended time, or None once ``total`` slots were handed out or
    the next slot falls at or after ``end`` (both optional).
    """

    __slots__ = ("_next", "end", "rate", "start", "total")

    def __init__(
        self, rate: float, start: float, *, total: int | None = None, end: float | None = None
    ) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"rate must be positive, not {rate}")
        self.rate = rate
        self.start = start
        self.total = total
        self.end = end
        self._next = 0

    def intended(self, index: int) -> float:
        """When call ``index`` (0-based) is meant to start."""
        return self.start + index / self.rate

    @property
    def issued(self) -> int:
        return self._next

    def take(self) -> float | None:
        if self.total is not None and self._next >= self.total:
            return None
        when = self.intended(self._next)
        if self.end is not None and when >= self.end:
            return None
        self._next += 1
        return when

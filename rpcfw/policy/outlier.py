"""Outlier ejection by consecutive connection failures, free of IO (the clock is an argument).

Rules, per endpoint key:

- every connection-level failure adds one to a consecutive-failure count; a success resets it;
- at ``consecutive_failures`` in a row the endpoint is ejected for ``base_ejection_time``,
  doubled for each further ejection, at most ``max_ejection_time``;
- when an ejection ends the count starts from zero; an endpoint that then stays un-ejected for
  ``recovery_period`` starts its next ejection from ``base_ejection_time`` again;
- at most ``max_ejection_percent`` of the known endpoints are ejected at once (rounded down, so
  a lone endpoint is never ejected), and a caller may veto one ejection (``can_eject``), e.g.
  when it would leave no ready endpoint. A vetoed endpoint is ejected by its next failure if
  the veto has lifted by then.

Results recorded while an endpoint is ejected (calls that were in flight) are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

__all__ = ["OutlierConfig", "OutlierEjector"]


@dataclass(frozen=True, slots=True)
class OutlierConfig:
    """Settings of outlier ejection by consecutive connection failures: how many in a row eject, the
    first and the longest ejection time, the most endpoints ejected at once (percent) and the
    quiet period that resets the ejection time."""

    consecutive_failures: int = 5
    base_ejection_time: float = 1.0
    max_ejection_time: float = 30.0
    max_ejection_percent: float = 50.0
    recovery_period: float = 30.0

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1:
            raise ValueError("consecutive_failures must be >= 1")
        if not 0 < self.base_ejection_time <= self.max_ejection_time:
            raise ValueError("need 0 < base_ejection_time <= max_ejection_time")
        if not 0 <= self.max_ejection_percent <= 100:
            raise ValueError("max_ejection_percent must be within [0, 100]")
        if self.recovery_period < 0:
            raise ValueError("recovery_period must be >= 0")


class _State:
    __slots__ = ("ejected_until", "ejections", "failures", "released_at")

    def __init__(self) -> None:
        self.failures = 0
        self.ejections = 0
        self.ejected_until: float | None = None
        self.released_at: float | None = None

    def settle(self, now: float) -> None:
        """End an ejection whose time is up."""
        until = self.ejected_until
        if until is not None and now >= until:
            self.ejected_until = None
            self.released_at = until
            self.failures = 0


class OutlierEjector:
    """Consecutive-failure ejection state for a set of endpoint keys."""

    __slots__ = ("_states", "config")

    def __init__(self, config: OutlierConfig | None = None) -> None:
        self.config = config if config is not None else OutlierConfig()
        self._states: dict[Hashable, _State] = {}

    def set_keys(self, keys: Iterable[Hashable]) -> None:
        """The current endpoints: keeps the state of known ones, forgets the others."""
        old = self._states
        self._states = {key: old.get(key) or _State() for key in keys}

    def record(
        self,
        key: Hashable,
        failure: bool,
        now: float,
        *,
        can_eject: Callable[[], bool] | None = None,
    ) -> bool:
        """One call's outcome. True when this failure ejected ``key``. An unknown key is added."""
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State()
        state.settle(now)
        if state.ejected_until is not None:
            return False
        if not failure:
            state.failures = 0
            return False
        state.failures += 1
        config = self.config
        if state.failures < config.consecutive_failures:
            return False
        if not self._below_cap(now) or (can_eject is not None and not can_eject()):
            return False
        if state.released_at is not None and now - state.released_at >= config.recovery_period:
            state.ejections = 0
        state.ejections += 1
        duration = config.base_ejection_time * 2.0 ** min(state.ejections - 1, 62)
        state.ejected_until = now + min(duration, config.max_ejection_time)
        state.failures = 0
        return True

    def _below_cap(self, now: float) -> bool:
        ejected = sum(1 for key in self._states if self.is_ejected(key, now))
        return (ejected + 1) * 100 <= len(self._states) * self.config.max_ejection_percent

    def is_ejected(self, key: Hashable, now: float) -> bool:
        state = self._states.get(key)
        if state is None:
            return False
        state.settle(now)
        return state.ejected_until is not None

    def next_change(self, now: float) -> float | None:
        """When the next ejection ends (a time > ``now``), or None when none is ejected."""
        times = [
            s.ejected_until
            for s in self._states.values()
            if s.ejected_until is not None and s.ejected_until > now
        ]
        return min(times, default=None)

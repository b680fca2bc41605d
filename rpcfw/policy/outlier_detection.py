"""Outlier detection as gRPC's gRFC A50 defines it, free of IO (the clock is an argument and
randomness is injected).

Per endpoint key, calls are counted (successes, failures) in an *active* bucket; every
``interval`` the caller runs :meth:`OutlierDetector.evaluate`, which

1. swaps the buckets (the active one becomes the *inactive* one that is evaluated, counting
   starts again from zero);
2. runs the success-rate algorithm (if configured): over the endpoints with at least
   ``request_volume`` calls (at least ``minimum_hosts`` of them, else nothing happens), an
   endpoint whose success rate is below ``mean - stdev * stdev_factor / 1000`` is ejected with
   probability ``enforcement_percentage`` %;
3. runs the failure-percentage algorithm (if configured): with at least ``minimum_hosts``
   endpoints with ``request_volume`` calls, an endpoint with at least that many calls whose
   failure percentage is above ``threshold`` is ejected with probability
   ``enforcement_percentage`` %;
4. for every endpoint not ejected, decreases its ejection multiplier by one (down to 0); an
   ejected endpoint whose time is up (``base_ejection_time * multiplier``, at most
   ``max(base_ejection_time, max_ejection_time)``, from its ejection) is un-ejected.

An ejection increases the endpoint's multiplier by one. Before each ejection both algorithms
stop when ``ejected * 100 >= max_ejection_percent * endpoints`` (A50's rule: one endpoint can
always be ejected, unless the percentage is 0). Already ejected endpoints are not ejected
again; the caller may veto one ejection (``can_eject``, e.g. when it would leave no ready
endpoint) and name endpoints ejected by another mechanism (``ejected_elsewhere``): they count
toward the cap.

What counts as a failure is the caller's choice (rpcfw: UNAVAILABLE, DEADLINE_EXCEEDED and
connection failures; any other status means the endpoint answered).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "FailurePercentageEjection",
    "OutlierDetectionConfig",
    "OutlierDetector",
    "OutlierEvent",
    "SuccessRateEjection",
]


def _check_common(enforcement: int, minimum_hosts: int, request_volume: int) -> None:
    if not 0 <= enforcement <= 100:
        raise ValueError("enforcement_percentage must be within [0, 100]")
    if minimum_hosts < 0:
        raise ValueError("minimum_hosts must be >= 0")
    if request_volume < 1:
        raise ValueError("request_volume must be >= 1")


@dataclass(frozen=True, slots=True)
class SuccessRateEjection:
    """Eject endpoints whose success rate is ``stdev_factor / 1000`` standard deviations
    below the mean. Defaults are A50's. With a factor of 1.9 it ejects nothing among fewer
    than 5 endpoints (one outlier among n is at most sqrt(n - 1) deviations away)."""

    stdev_factor: int = 1900
    enforcement_percentage: int = 100
    minimum_hosts: int = 5
    request_volume: int = 100

    def __post_init__(self) -> None:
        if self.stdev_factor < 0:
            raise ValueError("stdev_factor must be >= 0")
        _check_common(self.enforcement_percentage, self.minimum_hosts, self.request_volume)


@dataclass(frozen=True, slots=True)
class FailurePercentageEjection:
    """Eject endpoints whose failure percentage is above ``threshold``. Defaults are rpcfw's
    (A50's: 85, 100, 5 hosts, 50 calls): 2 hosts, so a pair or a trio of servers is covered,
    and 10 calls per interval, which a hung server reaches with a handful of concurrent
    callers (each caller can only fail there once per deadline)."""

    threshold: int = 85
    enforcement_percentage: int = 100
    minimum_hosts: int = 2
    request_volume: int = 10

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 100:
            raise ValueError("threshold must be within [0, 100]")
        _check_common(self.enforcement_percentage, self.minimum_hosts, self.request_volume)


@dataclass(frozen=True, slots=True)
class OutlierDetectionConfig:
    """gRFC A50's outlier detection, with rpcfw's defaults (A50's in brackets): ``interval``
    2 s [10 s], ``base_ejection_time`` 5 s [30 s], ``max_ejection_time`` 60 s [300 s],
    ``max_ejection_percent`` 10 [10], failure-percentage ejection on [off], success-rate
    ejection off [off]. Without either algorithm nothing is ever ejected."""

    interval: float = 2.0
    base_ejection_time: float = 5.0
    max_ejection_time: float = 60.0
    max_ejection_percent: float = 10.0
    success_rate_ejection: SuccessRateEjection | None = None
    failure_percentage_ejection: FailurePercentageEjection | None = FailurePercentageEjection()

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("interval must be > 0")
        if self.base_ejection_time <= 0:
            raise ValueError("base_ejection_time must be > 0")
        if self.max_ejection_time < 0:
            raise ValueError("max_ejection_time must be >= 0")
        if not 0 <= self.max_ejection_percent <= 100:
            raise ValueError("max_ejection_percent must be within [0, 100]")

    @property
    def enabled(self) -> bool:
        """Whether any ejection algorithm (success rate or failure percentage) is configured."""
        return (
            self.success_rate_ejection is not None or self.failure_percentage_ejection is not None
        )


class OutlierEvent(NamedTuple):
    """One change made by :meth:`OutlierDetector.evaluate`."""

    key: Hashable
    ejected: bool  # False: un-ejected
    reason: str


class _Endpoint:
    __slots__ = ("ejected_at", "failures", "multiplier", "successes", "volume", "window_failures")

    def __init__(self) -> None:
        self.successes = 0  # the active bucket
        self.failures = 0
        self.volume = 0  # the inactive bucket (the last interval)
        self.window_failures = 0
        self.multiplier = 0
        self.ejected_at: float | None = None

    def swap(self) -> None:
        self.volume = self.successes + self.failures
        self.window_failures = self.failures
        self.successes = self.failures = 0


class OutlierDetector:
    """A50 state for a set of endpoint keys. ``record`` is the per-call path (two counters),
    ``evaluate`` runs once per interval."""

    __slots__ = ("_random", "_states", "config", "ejections", "intervals", "unejections")

    def __init__(self, config: OutlierDetectionConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self._random = rng if rng is not None else random.Random()
        self._states: dict[Hashable, _Endpoint] = {}
        self.intervals = 0  # evaluations so far
        self.ejections = 0
        self.unejections = 0

    def set_keys(self, keys: Iterable[Hashable]) -> None:
        """The current endpoints: keeps the state of known ones, forgets the others."""
        old = self._states
        self._states = {key: old.get(key) or _Endpoint() for key in keys}

    def record(self, key: Hashable, failure: bool) -> None:
        """One finished call. Unknown keys (removed endpoints) are ignored."""
        state = self._states.get(key)
        if state is not None:
            if failure:
                state.failures += 1
            else:
                state.successes += 1

    def is_ejected(self, key: Hashable) -> bool:
        state = self._states.get(key)
        return state is not None and state.ejected_at is not None

    def ejected(self) -> list[Hashable]:
        return [key for key, state in self._states.items() if state.ejected_at is not None]

    def multiplier(self, key: Hashable) -> int:
        return self._states[key].multiplier

    @property
    def quiet(self) -> bool:
        """Nothing for an interval to do: no calls counted (in either bucket), none ejected,
        every multiplier 0. The caller may stop its timer until the next call."""
        return all(
            s.successes == s.failures == s.volume == s.multiplier == 0 and s.ejected_at is None
            for s in self._states.values()
        )

    def evaluate(
        self,
        now: float,
        *,
        can_eject: Callable[[Hashable], bool] | None = None,
        ejected_elsewhere: Callable[[Hashable], bool] | None = None,
    ) -> list[OutlierEvent]:
        """One interval's work (steps 1-4 above); returns what changed, in order."""
        self.intervals += 1
        config, states = self.config, self._states
        for state in states.values():
            state.swap()
        elsewhere = {k for k in states if ejected_elsewhere is not None and ejected_elsewhere(k)}
        out = len(elsewhere | {k for k, s in states.items() if s.ejected_at is not None})
        candidates: list[tuple[Hashable, int, str]] = []  # (key, enforcement %, reason)
        success_rate = config.success_rate_ejection
        if success_rate is not None:
            candidates += self._success_rate_outliers(success_rate)
        failure_percentage = config.failure_percentage_ejection
        if failure_percentage is not None:
            candidates += self._failure_percentage_outliers(failure_percentage)
        events: list[OutlierEvent] = []
        for key, enforcement, reason in candidates:
            if out * 100 >= config.max_ejection_percent * len(states):
                break  # A50 checks before each ejection: one can always go (unless 0 %)
            state = states[key]
            if state.ejected_at is not None or key in elsewhere or not self._enforce(enforcement):
                continue
            if can_eject is not None and not can_eject(key):
                continue
            state.ejected_at = now
            state.multiplier += 1
            out += 1
            self.ejections += 1
            events.append(OutlierEvent(key, True, reason))
        limit = max(config.base_ejection_time, config.max_ejection_time)
        for key, state in states.items():
            at = state.ejected_at
            if at is None:
                if state.multiplier > 0:
                    state.multiplier -= 1
            elif now >= at + min(config.base_ejection_time * state.multiplier, limit):
                state.ejected_at = None
                self.unejections += 1
                events.append(OutlierEvent(key, False, "ejection time over"))
        return events

    def ejection_time(self, key: Hashable) -> float:
        """How long ``key``'s current (or next) ejection lasts."""
        config = self.config
        multiplier = max(self._states[key].multiplier, 1)
        limit = max(config.base_ejection_time, config.max_ejection_time)
        return min(config.base_ejection_time * multiplier, limit)

    # -- internals ------------------------------------------------------------------------
    def _enforce(self, percentage: int) -> bool:
        if percentage >= 100:
            return True  # no draw: the random stream is only used when it matters
        return percentage > 0 and self._random.randrange(100) < percentage

    def _success_rate_outliers(
        self, config: SuccessRateEjection
    ) -> list[tuple[Hashable, int, str]]:
        rates = [
            (key, (state.volume - state.window_failures) / state.volume)
            for key, state in self._states.items()
            if state.volume >= config.request_volume
        ]
        if not rates or len(rates) < config.minimum_hosts:
            return []
        mean = math.fsum(rate for _, rate in rates) / len(rates)
        stdev = math.sqrt(math.fsum((rate - mean) ** 2 for _, rate in rates) / len(rates))
        threshold = mean - stdev * (config.stdev_factor / 1000)
        enforcement = config.enforcement_percentage
        return [
            (key, enforcement, f"success rate {rate:.1%} < {threshold:.1%}")
            for key, rate in rates
            if rate < threshold
        ]

    def _failure_percentage_outliers(
        self, config: FailurePercentageEjection
    ) -> list[tuple[Hashable, int, str]]:
        eligible = [
            (key, s.volume, 100.0 * s.window_failures / s.volume)
            for key, s in self._states.items()
            if s.volume >= config.request_volume
        ]
        if len(eligible) < config.minimum_hosts:
            return []
        enforcement = config.enforcement_percentage
        return [
            (key, enforcement, f"{percent:.0f} % of {volume} calls failed")
            for key, volume, percent in eligible
            if percent > config.threshold
        ]

"""Exponential backoff with jitter (gRPC connection-backoff semantics), free of IO.

The n-th delay (from 0) is ``min(initial * multiplier**n, max_delay)`` spread uniformly by
``± jitter`` of itself, as in gRPC's connection-backoff spec: the cap applies to the un-jittered
delay, so a capped delay lies in ``[max_delay * (1 - jitter), max_delay * (1 + jitter)]`` and
many clients that hit the cap together still spread out.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff", "BackoffConfig"]


@dataclass(frozen=True, slots=True)
class BackoffConfig:
    """Backoff parameters; defaults are gRPC's connection-backoff ones."""

    initial: float = 1.0
    multiplier: float = 1.6
    jitter: float = 0.2
    max_delay: float = 120.0

    def __post_init__(self) -> None:
        if self.initial < 0:
            raise ValueError(f"initial must be >= 0, got {self.initial}")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter}")
        if self.max_delay < self.initial:
            raise ValueError(f"max_delay ({self.max_delay}) must be >= initial ({self.initial})")


class Backoff:
    """Successive delays for one retry loop: call :meth:`next_delay` before each retry and
    :meth:`reset` after a success. ``random`` returns floats in ``[0, 1)`` (inject for tests)."""

    __slots__ = ("_current", "_random", "attempts", "config")

    def __init__(
        self,
        config: BackoffConfig | None = None,
        *,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.config = config if config is not None else BackoffConfig()
        self._random = random
        self._current = self.config.initial
        self.attempts = 0

    def next_delay(self) -> float:
        """The delay before the next attempt, in seconds; advances the sequence."""
        config = self.config
        base = self._current
        self._current = min(base * config.multiplier, config.max_delay)
        self.attempts += 1
        return max(0.0, base * (1.0 + config.jitter * (2.0 * self._random() - 1.0)))

    def reset(self) -> None:
        """Start over from ``initial`` (after a successful attempt)."""
        self._current = self.config.initial
        self.attempts = 0

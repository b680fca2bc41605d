"""Retry and hedging decisions (gRFC A6), free of IO: the channel asks, then acts.

* :class:`RetryThrottle`: the per-channel token bucket. Tokens start at ``maxTokens``; each
  attempt that fails with a retryable (retry) or non-fatal (hedging) status takes 1, each OK
  attempt gives back ``tokenRatio`` (never above ``maxTokens``); a retry or a further hedge is
  allowed only while ``tokens > maxTokens / 2``.
* :class:`RetryState`: one call's retry loop. :meth:`RetryState.on_failure` says whether to
  retry and after how long: only a retryable status, while attempts remain, the call is not
  committed and the throttle allows it. The delay is ``random(0, min(initial *
  multiplier**(n-1), max))``, n counting retries since the start or the last server pushback;
  ``grpc-retry-pushback-ms`` overrides it: a non-negative integer is the delay (and resets n),
  anything else (negative, unparseable) stops retrying.
* :class:`RetryBuffer`: how many bytes of sent request messages streaming calls may keep for
  replaying on a new attempt: per call and per channel; a call that would pass either limit
  commits (no more retries) and frees what it held.
"""

from __future__ import annotations

import random as _random
import re
from collections.abc import Callable
from dataclasses import dataclass

from .._status import Status
from .service_config import HedgingPolicy, RetryPolicy, RetryThrottling

__all__ = [
    "DEFAULT_PER_CALL_RETRY_BUFFER",
    "DEFAULT_RETRY_BUFFER",
    "PUSHBACK_HEADER",
    "HedgingState",
    "RetryBuffer",
    "Pushback",
    "RetryDecision",
    "RetryState",
    "RetryThrottle",
    "parse_pushback",
]

PUSHBACK_HEADER = "grpc-retry-pushback-ms"
DEFAULT_PER_CALL_RETRY_BUFFER = 256 * 1024  # gRPC's defaults
DEFAULT_RETRY_BUFFER = 16 * 1024 * 1024
_INTEGER = re.compile(r"^-?\d+$")


@dataclass(frozen=True, slots=True)
class Pushback:
    """What the server said: ``delay`` seconds before the next attempt, or ``stop``."""

    delay: float | None = None
    stop: bool = False


def parse_pushback(values: list[str]) -> Pushback | None:
    """``grpc-retry-pushback-ms`` values to a pushback; None when absent. A6: a negative or
    unparseable value (or several values) means "do not retry"."""
    if not values:
        return None
    if len(values) != 1:
        return Pushback(stop=True)
    value = values[0].strip()
    if not _INTEGER.match(value) or value.startswith("-"):
        return Pushback(stop=True)
    return Pushback(delay=int(value) / 1000)


class RetryThrottle:
    """gRFC A6 retry throttling: one bucket per channel (shared by all its methods)."""

    __slots__ = ("config", "tokens")

    def __init__(self, config: RetryThrottling) -> None:
        self.config = config
        self.tokens = float(config.max_tokens)

    def on_failure(self) -> None:
        self.tokens = max(0.0, self.tokens - 1)

    def on_success(self) -> None:
        self.tokens = min(float(self.config.max_tokens), self.tokens + self.config.token_ratio)

    @property
    def allows_retry(self) -> bool:
        return self.tokens > self.config.max_tokens / 2


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Whether a failed attempt is retried, after what ``delay`` (seconds), and if not, the
    ``reason``."""

    retry: bool
    delay: float = 0.0
    reason: str = ""


class RetryState:
    """One call under a retry policy. ``attempts`` counts the attempts made so far."""

    __slots__ = ("_backoff_retries", "_random", "attempts", "policy", "throttle")

    def __init__(
        self,
        policy: RetryPolicy,
        throttle: RetryThrottle | None = None,
        *,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.policy = policy
        self.throttle = throttle
        self._random = random
        self.attempts = 1
        self._backoff_retries = 0

    def on_success(self) -> None:
        if self.throttle is not None:
            self.throttle.on_success()

    def on_failure(
        self, status: Status, pushback: Pushback | None = None, *, committed: bool = False
    ) -> RetryDecision:
        """The attempt just made failed with ``status``: retry (after ``delay``) or not.
        When it says retry, ``attempts`` is already counted for the next one."""
        if status is Status.OK:
            raise ValueError("on_failure() needs a failed status")
        if status not in self.policy.retryable_status_codes:
            return RetryDecision(False, reason=f"{status.name} is not retryable")
        if self.throttle is not None:
            self.throttle.on_failure()
        if committed:
            return RetryDecision(False, reason="committed")
        if self.attempts >= self.policy.max_attempts:
            return RetryDecision(False, reason=f"{self.attempts} attempts made")
        if self.throttle is not None and not self.throttle.allows_retry:
            return RetryDecision(False, reason="throttled")
        if pushback is not None and pushback.stop:
            return RetryDecision(False, reason="server pushback: do not retry")
        if pushback is not None and pushback.delay is not None:
            delay = pushback.delay
            self._backoff_retries = 0
        else:
            self._backoff_retries += 1
            delay = self._random() * self.policy.backoff_ceiling(self._backoff_retries)
        self.attempts += 1
        return RetryDecision(True, delay)


class HedgingState:
    """One call under a hedging policy: when the next hedge may start."""

    __slots__ = ("policy", "started", "stopped", "throttle")

    def __init__(self, policy: HedgingPolicy, throttle: RetryThrottle | None = None) -> None:
        self.policy = policy
        self.throttle = throttle
        self.started = 0
        self.stopped = False  # a fatal status or a "do not retry" pushback: no more hedges

    def can_start(self) -> bool:
        """Another attempt may start now (the first always may)."""
        if self.started == 0:
            return True
        if self.stopped or self.started >= self.policy.max_attempts:
            return False
        return self.throttle is None or self.throttle.allows_retry

    def on_started(self) -> None:
        self.started += 1

    def on_success(self) -> None:
        if self.throttle is not None:
            self.throttle.on_success()

    def on_failure(self, status: Status, pushback: Pushback | None = None) -> tuple[bool, float]:
        """An attempt failed: (fatal, delay before the next hedge). A fatal status ends the
        call with it; a non-fatal one lets the next hedge start after ``delay`` (0, or the
        server's pushback)."""
        if status not in self.policy.non_fatal_status_codes:
            self.stopped = True
            return True, 0.0
        if self.throttle is not None:
            self.throttle.on_failure()
        if pushback is not None and pushback.stop:
            self.stopped = True
            return False, 0.0
        return False, pushback.delay if pushback is not None and pushback.delay else 0.0


class RetryBuffer:
    """The bytes of request messages a channel's calls keep for replay (gRFC A6's buffer
    limits): at most ``per_call`` for one call, ``total`` for all the channel's calls."""

    __slots__ = ("per_call", "total", "used")

    def __init__(
        self, per_call: int = DEFAULT_PER_CALL_RETRY_BUFFER, total: int = DEFAULT_RETRY_BUFFER
    ) -> None:
        if per_call < 0 or total < 0:
            raise ValueError("retry buffer limits must be >= 0")
        self.per_call = per_call
        self.total = total
        self.used = 0

    def reserve(self, held: int, size: int) -> bool:
        """A call that holds ``held`` bytes wants to keep ``size`` more: True (reserved) when
        both limits allow it, False when the call must commit instead."""
        if held + size > self.per_call or self.used + size > self.total:
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        self.used = max(0, self.used - size)

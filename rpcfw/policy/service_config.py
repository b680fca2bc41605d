"""gRPC service config (the parts rpcfw applies): per-method retry / hedging policies and
timeouts, and channel-wide retry throttling. Parsed from gRPC's JSON form and validated as
gRFC A6 says; pure data, no IO.

Lookup for a method ``/pkg.Svc/M``: the entry naming ``{"service": "pkg.Svc", "method": "M"}``,
else the service default ``{"service": "pkg.Svc"}``, else the global default ``{}``.

rpcfw extension: ``"retryNonIdempotent": true`` in a method config lets its retry or hedging
policy apply to a method whose proto does not declare ``idempotency_level`` IDEMPOTENT or
NO_SIDE_EFFECTS (without it such methods are never retried nor hedged).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._status import Status

__all__ = [
    "MAX_ATTEMPTS_LIMIT",
    "HedgingPolicy",
    "MethodConfig",
    "RetryPolicy",
    "RetryThrottling",
    "ServiceConfig",
    "parse_duration",
]

#: gRFC A6: maxAttempts above 5 is treated as 5
MAX_ATTEMPTS_LIMIT = 5

_DURATION = re.compile(r"^(\d+)(?:\.(\d{1,9}))?s$")


def parse_duration(value: object, what: str) -> float:
    """A protobuf JSON duration (``"1.5s"``) in seconds; numbers are accepted as seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: invalid duration {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value.strip())):
        seconds = int(match[1]) + (int(match[2].ljust(9, "0")) / 1e9 if match[2] else 0.0)
    else:
        raise ValueError(f"{what}: invalid duration {value!r} (expected e.g. '0.1s')")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{what}: invalid duration {value!r}")
    return seconds


def _status_codes(values: object, what: str) -> frozenset[Status]:
    if not isinstance(values, list | tuple | set | frozenset):
        raise ValueError(f"{what}: expected a list of status codes, got {values!r}")
    codes: set[Status] = set()
    for value in values:
        if isinstance(value, Status):
            codes.add(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                codes.add(Status(value))
            except ValueError:
                raise ValueError(f"{what}: unknown status code {value!r}") from None
        elif isinstance(value, str) and value.upper() in Status.__members__:
            codes.add(Status[value.upper()])
        else:
            raise ValueError(f"{what}: unknown status code {value!r}")
    if Status.OK in codes:
        raise ValueError(f"{what}: OK cannot be listed")
    return frozenset(codes)


def _check_attempts(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ValueError(f"{what}.maxAttempts must be an integer >= 2, got {value!r}")
    return min(value, MAX_ATTEMPTS_LIMIT)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """gRFC A6 ``retryPolicy``. ``max_attempts`` counts the first attempt (capped at 5)."""

    max_attempts: int
    initial_backoff: float
    max_backoff: float
    backoff_multiplier: float
    retryable_status_codes: frozenset[Status]

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_attempts", _check_attempts(self.max_attempts, "retryPolicy"))
        for name in ("initial_backoff", "max_backoff", "backoff_multiplier"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"retryPolicy.{name} must be > 0, got {value!r}")
        codes = _status_codes(self.retryable_status_codes, "retryPolicy.retryableStatusCodes")
        if not codes:
            raise ValueError("retryPolicy.retryableStatusCodes must not be empty")
        object.__setattr__(self, "retryable_status_codes", codes)

    def backoff_ceiling(self, retry: int) -> float:
        """The upper bound of the delay before the ``retry``-th retry (from 1) since the start
        or the last server pushback: ``min(initial * multiplier**(retry-1), max)``."""
        try:
            ceiling = self.initial_backoff * self.backoff_multiplier ** (retry - 1)
        except OverflowError:
            return self.max_backoff
        return min(ceiling, self.max_backoff)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            max_attempts=data.get("maxAttempts", 0),
            initial_backoff=parse_duration(data.get("initialBackoff"), "initialBackoff"),
            max_backoff=parse_duration(data.get("maxBackoff"), "maxBackoff"),
            backoff_multiplier=data.get("backoffMultiplier", 0),
            retryable_status_codes=_status_codes(
                data.get("retryableStatusCodes", ()), "retryPolicy.retryableStatusCodes"
            ),
        )


@dataclass(frozen=True, slots=True)
class HedgingPolicy:
    """gRFC A6 ``hedgingPolicy``: up to ``max_attempts`` attempts ``hedging_delay`` apart;
    an attempt that fails with a non-fatal status lets the next one start at once."""

    max_attempts: int
    hedging_delay: float = 0.0
    non_fatal_status_codes: frozenset[Status] = frozenset()

    def __post_init__(self) -> None:
        attempts = _check_attempts(self.max_attempts, "hedgingPolicy")
        object.__setattr__(self, "max_attempts", attempts)
        delay = self.hedging_delay
        if not (isinstance(delay, int | float) and math.isfinite(delay) and delay >= 0):
            raise ValueError(f"hedgingPolicy.hedgingDelay must be >= 0, got {delay!r}")
        codes = _status_codes(self.non_fatal_status_codes, "hedgingPolicy.nonFatalStatusCodes")
        object.__setattr__(self, "non_fatal_status_codes", codes)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HedgingPolicy:
        delay = data.get("hedgingDelay")
        return cls(
            max_attempts=data.get("maxAttempts", 0),
            hedging_delay=0.0 if delay is None else parse_duration(delay, "hedgingDelay"),
            non_fatal_status_codes=_status_codes(
                data.get("nonFatalStatusCodes", ()), "hedgingPolicy.nonFatalStatusCodes"
            ),
        )


@dataclass(frozen=True, slots=True)
class MethodConfig:
    """What applies to one method: at most one of a retry and a hedging policy, a timeout
    (the call's deadline is the earlier of it and the caller's), and the opt-in to retry or
    hedge methods not declared idempotent."""

    retry_policy: RetryPolicy | None = None
    hedging_policy: HedgingPolicy | None = None
    timeout: float | None = None
    retry_non_idempotent: bool = False

    def __post_init__(self) -> None:
        if self.retry_policy is not None and self.hedging_policy is not None:
            raise ValueError("a method config cannot have both retryPolicy and hedgingPolicy")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be > 0, got {self.timeout!r}")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MethodConfig:
        retry, hedging, timeout = (
            data.get("retryPolicy"),
            data.get("hedgingPolicy"),
            data.get("timeout"),
        )
        opt_in = data.get("retryNonIdempotent", False)
        if not isinstance(opt_in, bool):
            raise ValueError(f"retryNonIdempotent must be a boolean, got {opt_in!r}")
        return cls(
            retry_policy=None if retry is None else RetryPolicy.from_json(retry),
            hedging_policy=None if hedging is None else HedgingPolicy.from_json(hedging),
            timeout=None if timeout is None else parse_duration(timeout, "timeout"),
            retry_non_idempotent=opt_in,
        )


@dataclass(frozen=True, slots=True)
class RetryThrottling:
    """gRFC A6 ``retryThrottling``: ``0 < max_tokens <= 1000``, ``token_ratio > 0``."""

    max_tokens: float
    token_ratio: float

    def __post_init__(self) -> None:
        if not 0 < self.max_tokens <= 1000:
            raise ValueError(
                f"retryThrottling.maxTokens must be in (0, 1000], got {self.max_tokens}"
            )
        if not (math.isfinite(self.token_ratio) and self.token_ratio > 0):
            raise ValueError(f"retryThrottling.tokenRatio must be > 0, got {self.token_ratio}")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RetryThrottling:
        # A6: tokenRatio keeps 3 decimal places
        return cls(data.get("maxTokens", 0), round(float(data.get("tokenRatio", 0)), 3))


def _key(name: Mapping[str, Any]) -> str:
    service, method = name.get("service", ""), name.get("method", "")
    if not isinstance(service, str) or not isinstance(method, str):
        raise ValueError(f"invalid method name {dict(name)!r}")
    if method and not service:
        raise ValueError(f"a method name needs its service: {dict(name)!r}")
    return f"{service}/{method}" if service else ""


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Method configs keyed by ``"pkg.Svc/M"`` (exact), ``"pkg.Svc/"`` (service default) or
    ``""`` (global default), and optional retry throttling."""

    methods: Mapping[str, MethodConfig] = field(default_factory=dict)
    retry_throttling: RetryThrottling | None = None

    def method_config(self, path: str) -> MethodConfig | None:
        """The config for ``/pkg.Svc/M``: exact method, service default, global default."""
        _, service, method = path.split("/", 2) if path.count("/") >= 2 else ("", path, "")
        methods = self.methods
        for key in (f"{service}/{method}", f"{service}/", ""):
            found = methods.get(key)
            if found is not None:
                return found
        return None

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> ServiceConfig:
        """Parse gRPC's JSON service config (text or already-decoded); ValueError if invalid.
        Fields rpcfw does not apply (``loadBalancingConfig``, ``waitForReady``, ...) are
        ignored."""
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise ValueError(f"service config is not valid JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise ValueError("service config must be a JSON object")
        methods: dict[str, MethodConfig] = {}
        for entry in data.get("methodConfig", ()) or ():
            config = MethodConfig.from_json(entry)
            names: Iterable[Mapping[str, Any]] = entry.get("name", ())
            for name in names:
                key = _key(name)
                if key in methods:
                    raise ValueError(f"duplicate method config for {key or 'the default'!r}")
                methods[key] = config
        throttling = data.get("retryThrottling")
        return cls(
            methods,
            None if throttling is None else RetryThrottling.from_json(throttling),
        )

    @classmethod
    def of(
        cls, value: ServiceConfig | str | bytes | Mapping[str, Any] | None
    ) -> ServiceConfig | None:
        """A ServiceConfig from any accepted form (None stays None)."""
        if value is None or isinstance(value, ServiceConfig):
            return value
        return cls.from_json(value)

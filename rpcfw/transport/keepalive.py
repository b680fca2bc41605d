"""Keepalive and connection-age decisions (gRPC's A8/A9 and grpc-go's keepalive parameters).

Pure functions of the clock and of what the connection saw, so they are unit-tested without
timers; the IO layer calls them from one timer per connection and does what they say.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

__all__ = [
    "ConnectionAge",
    "KeepaliveAction",
    "KeepaliveConfig",
    "jittered_age",
    "keepalive_step",
]


@dataclass(frozen=True, slots=True)
class KeepaliveConfig:
    """Ping a peer that has been quiet for ``time`` seconds; close the connection if nothing
    (the PING ack or any other frame) arrives within ``timeout``. Without calls in flight
    this happens only with ``permit_without_calls`` (the server must allow it too, see
    ``H2Config.permit_pings_without_calls``). gRPC defaults: off on clients, 2 hours on
    servers, timeout 20 s."""

    time: float
    timeout: float = 20.0
    permit_without_calls: bool = False

    def __post_init__(self) -> None:
        if self.time <= 0 or self.timeout <= 0:
            raise ValueError("keepalive time and timeout must be positive")


@dataclass(frozen=True, slots=True)
class ConnectionAge:
    """Server connection management (grpc-go's MaxConnectionIdle / MaxConnectionAge /
    MaxConnectionAgeGrace): close a connection that had no calls for ``max_idle`` seconds;
    drain one older than ``max_age`` (jittered by +-10 %) with GOAWAY, and close it
    ``grace`` seconds later whatever still runs (None: wait for the calls)."""

    max_idle: float | None = None
    max_age: float | None = None
    grace: float | None = None


class KeepaliveAction(enum.Enum):
    """What the keepalive timer should do now: WAIT, SEND_PING, or CLOSE the connection."""

    WAIT = "wait"
    SEND_PING = "send_ping"
    CLOSE = "close"


def keepalive_step(
    config: KeepaliveConfig,
    now: float,
    last_read: float,
    ping_sent_at: float | None,
    has_calls: bool,
) -> tuple[KeepaliveAction, float]:
    """What to do now, and when to ask again.

    ``last_read``: when a frame last arrived; ``ping_sent_at``: when our keepalive PING went
    out (None: none outstanding). Any frame read after the PING counts as its answer.
    """
    if ping_sent_at is not None and last_read < ping_sent_at:
        deadline = ping_sent_at + config.timeout
        if now >= deadline:
            return KeepaliveAction.CLOSE, now
        return KeepaliveAction.WAIT, deadline
    due = last_read + config.time
    if now < due:
        return KeepaliveAction.WAIT, due
    if not has_calls and not config.permit_without_calls:
        return KeepaliveAction.WAIT, now + config.time  # dormant: look again later
    return KeepaliveAction.SEND_PING, now + config.timeout


def jittered_age(max_age: float, rng: random.Random | None = None) -> float:
    """``max_age`` +- 10 %, so connections made together do not all drain together."""
    return max_age * (0.9 + 0.2 * (rng or random).random())

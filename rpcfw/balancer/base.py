"""Balancer and Picker contracts (grpc-go's split), free of IO.

- A **resolver** pushes the set of :class:`Endpoint` s for a target.
- A **balancer** owns one subchannel per endpoint it wants, asks them to connect, hears their
  connectivity changes, and publishes an immutable **picker** (plus an aggregate state) through
  its :class:`BalancerHelper` whenever something changed.
- The call path asks the current picker for a subchannel per call; ``None`` means "no ready
  subchannel now": the call waits for the next picker (until its deadline) or fails fast.

The channel calls every balancer method from one place, in order (never re-entrantly), so
balancers need no locks. Subchannels here are whatever the helper hands out: the channel's real
ones or a test's fakes; balancers only use the :class:`SubchannelLike` surface.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .._clock import Cancellable
from ..endpoint import Endpoint

__all__ = [
    "Balancer",
    "BalancerHelper",
    "Cancellable",
    "ConnectivityState",
    "Endpoint",
    "OnDone",
    "PickInfo",
    "PickResult",
    "Picker",
    "SubchannelLike",
    "waits_for_call",
]


class ConnectivityState(enum.Enum):
    """The state of a subchannel or a channel, as in gRPC's connectivity semantics: IDLE,
    CONNECTING, READY, TRANSIENT_FAILURE or SHUTDOWN."""

    IDLE = "IDLE"
    CONNECTING = "CONNECTING"
    READY = "READY"
    TRANSIENT_FAILURE = "TRANSIENT_FAILURE"
    SHUTDOWN = "SHUTDOWN"


class SubchannelLike(Protocol):
    """What a balancer sees of a subchannel."""

    @property
    def endpoint(self) -> Endpoint: ...

    @property
    def state(self) -> ConnectivityState: ...

    def request_connection(self) -> None:
        """Start connecting if idle (no-op otherwise). A subchannel that lost its connection
        may only record the request and stay IDLE until a call needs it (see
        :func:`waits_for_call`)."""


def waits_for_call(subchannel: SubchannelLike) -> bool:
    """The subchannel is IDLE, asked to connect, and waits for the next call to do it (it lost
    its connection; a channel's real subchannels say so with ``connect_deferred``). Balancers
    report IDLE rather than CONNECTING for it: nothing is connecting, the next call will."""
    return subchannel.state is ConnectivityState.IDLE and (
        getattr(subchannel, "connect_deferred", False) is True
    )


@dataclass(frozen=True, slots=True)
class PickInfo:
    """What a picker may look at for one call."""

    method: str
    hash_key: bytes | None = None


#: ``on_done(latency_seconds, connection_failure, failure)``, run once when a picked call ends:
#: ``connection_failure`` when rpcfw saw the connection fail (lost, refused: UNAVAILABLE without
#: a server status), ``failure`` when the call counts against its endpoint for outlier
#: detection (it ended UNAVAILABLE or DEADLINE_EXCEEDED, connection failures included; any other
#: status means the endpoint answered). A pick the channel did not use reports
#: ``on_done(0.0, False, False)``.
OnDone = Callable[[float, bool, bool], None]


@dataclass(slots=True)
class PickResult:
    """The chosen subchannel and, optionally, a callback run when the call ends (load and
    outlier reporting; see :data:`OnDone`)."""

    subchannel: SubchannelLike
    on_done: OnDone | None = None


class Picker(abc.ABC):
    """An immutable snapshot; ``pick`` runs on every call, so keep it cheap."""

    @abc.abstractmethod
    def pick(self, info: PickInfo) -> PickResult | None:
        """A subchannel for this call, or None to wait for the next picker."""


class BalancerHelper(Protocol):
    """What the channel offers a balancer."""

    def create_subchannel(self, endpoint: Endpoint) -> SubchannelLike: ...

    def remove_subchannel(self, subchannel: SubchannelLike) -> None:
        """Stop using it: calls in flight on it finish, then it closes (drained, not cut)."""

    def update_picker(self, state: ConnectivityState, picker: Picker) -> None: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        """Run ``callback`` after ``delay`` seconds, in order with the balancer's other calls."""
        ...

    def now(self) -> float:
        """Monotonic seconds (a fake clock in tests)."""
        ...


class Balancer(abc.ABC):
    """A load-balancing policy instance, one per channel."""

    def __init__(self, helper: BalancerHelper) -> None:
        self.helper = helper

    @abc.abstractmethod
    def update_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        """The resolver's new full set of endpoints (possibly empty)."""

    @abc.abstractmethod
    def update_subchannel_state(self, subchannel: SubchannelLike, state: ConnectivityState) -> None:
        """A subchannel this balancer created changed state."""

    def resolver_error(self, error: Exception) -> None:  # noqa: B027 (optional hook)
        """The resolver failed; keep the endpoints we have (never empty the set)."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """The channel is closing."""

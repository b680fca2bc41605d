"""Fakes for balancer tests: subchannels whose state the test drives, and a helper with a manual
clock and a call_later queue."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from typing import Any

from rpcfw.balancer.base import (
    Balancer,
    ConnectivityState,
    Endpoint,
    Picker,
    PickInfo,
    PickResult,
)

__all__ = ["FakeHelper", "FakeSubchannel", "FakeTimer", "endpoint", "endpoints"]

READY = ConnectivityState.READY


def endpoint(port: int, **attributes: Any) -> Endpoint:
    return Endpoint("10.0.0.1", port, attributes)


def endpoints(*ports: int) -> list[Endpoint]:
    return [endpoint(port) for port in ports]


class FakeSubchannel:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.state = ConnectivityState.IDLE
        self.connect_requests = 0
        self.removed = False

    def request_connection(self) -> None:
        self.connect_requests += 1

    @property
    def port(self) -> int:
        return self.endpoint.port

    def __repr__(self) -> str:
        return f"<FakeSubchannel {self.endpoint} {self.state.value}>"


class FakeTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeHelper:
    """A BalancerHelper. Attach the balancer (``helper.balancer = ...``) to drive state with
    :meth:`set_state`; :meth:`advance` moves the clock and runs due ``call_later`` callbacks."""

    def __init__(self, start: float = 1000.0) -> None:
        self.clock = start
        self.balancer: Balancer | None = None
        self.created: list[FakeSubchannel] = []
        self.removed: list[FakeSubchannel] = []
        self.updates: list[tuple[ConnectivityState, Picker]] = []
        self._timers: list[tuple[float, int, Callable[[], None], FakeTimer]] = []
        self._seq = itertools.count()

    # -- BalancerHelper -----------------------------------------------------------------------
    def create_subchannel(self, endpoint: Endpoint) -> FakeSubchannel:
        subchannel = FakeSubchannel(endpoint)
        self.created.append(subchannel)
        return subchannel

    def remove_subchannel(self, subchannel: Any) -> None:
        assert isinstance(subchannel, FakeSubchannel)
        assert not subchannel.removed, "removed twice"
        subchannel.removed = True
        self.removed.append(subchannel)

    def update_picker(self, state: ConnectivityState, picker: Picker) -> None:
        self.updates.append((state, picker))

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer()
        heapq.heappush(self._timers, (self.clock + delay, next(self._seq), callback, timer))
        return timer

    def now(self) -> float:
        return self.clock

    # -- test controls ------------------------------------------------------------------------
    @property
    def state(self) -> ConnectivityState:
        return self.updates[-1][0]

    @property
    def picker(self) -> Picker:
        return self.updates[-1][1]

    def pending_timers(self) -> int:
        return sum(1 for *_, timer in self._timers if not timer.cancelled)

    def advance(self, seconds: float = 0.0) -> None:
        """Move the clock, running every due timer (in time order) at its own time."""
        until = self.clock + seconds
        while self._timers and self._timers[0][0] <= until:
            at, _, callback, timer = heapq.heappop(self._timers)
            self.clock = max(self.clock, at)
            if not timer.cancelled:
                callback()
        self.clock = until

    def live(self) -> list[FakeSubchannel]:
        return [sc for sc in self.created if not sc.removed]

    def subchannel(self, port: int) -> FakeSubchannel:
        (found,) = [sc for sc in self.live() if sc.endpoint.port == port]
        return found

    def set_state(self, subchannel: FakeSubchannel, state: ConnectivityState) -> None:
        assert self.balancer is not None
        subchannel.state = state
        self.balancer.update_subchannel_state(subchannel, state)

    def make_ready(self, ports: Iterable[int] | None = None) -> None:
        targets = self.live() if ports is None else [self.subchannel(p) for p in ports]
        for subchannel in targets:
            self.set_state(subchannel, READY)

    def pick(self, key: bytes | None = None) -> PickResult | None:
        return self.picker.pick(PickInfo("/svc/Method", key))

    def pick_port(self, key: bytes | None = None) -> int:
        result = self.pick(key)
        assert result is not None
        return result.subchannel.endpoint.port

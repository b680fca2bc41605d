"""SubchannelListBalancer: the shared base of policies that keep one subchannel per endpoint
and spread calls over the READY ones (round robin, weighted, p2c, ring hash).

- Resolver updates are diffed by :attr:`Endpoint.key`: new endpoints get a subchannel, gone
  ones are removed (after the new picker is published), kept ones keep their subchannel (calls
  in flight there are undisturbed) and take the new attributes (see :meth:`endpoint_of`).
- Every subchannel is asked to connect, and again whenever it reports IDLE (a lost connection);
  the subchannel does its own backoff between attempts.
- Aggregate state: READY if any is READY, else CONNECTING if any is CONNECTING or IDLE, else
  IDLE if some wait IDLE for a call to reconnect them (they lost their connection: see
  :func:`~rpcfw.balancer.base.waits_for_call`), else TRANSIENT_FAILURE (also with no endpoints
  at all).
- A new picker is built by :meth:`build_picker` over the READY, non-ejected subchannels whenever
  that set or their attributes change; with nothing READY the picker returns None.
- Outlier ejection (see :mod:`._outliers`), fed by each :class:`PickResult`'s ``on_done``:
  consecutive connection failures (``outlier``) and gRFC A50's outlier detection
  (``outlier_detection``: failures are calls that ended UNAVAILABLE or DEADLINE_EXCEEDED);
  ``None`` turns either off. Subchannels ejected by either are left out of the picker until
  their ejection ends; the last READY one is never ejected.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from ..policy.outlier import OutlierConfig
from ..policy.outlier_detection import OutlierDetectionConfig, OutlierDetector
from ._outliers import OutlierTracker
from .base import (
    Balancer,
    BalancerHelper,
    ConnectivityState,
    Endpoint,
    OnDone,
    Picker,
    PickInfo,
    PickResult,
    SubchannelLike,
    waits_for_call,
)

__all__ = [
    "DEFAULT_OUTLIER",
    "DEFAULT_OUTLIER_DETECTION",
    "NoReadyPicker",
    "SubchannelListBalancer",
]

DEFAULT_OUTLIER = OutlierConfig()
DEFAULT_OUTLIER_DETECTION = OutlierDetectionConfig()

_READY = ConnectivityState.READY
_CONNECTING = ConnectivityState.CONNECTING
_IDLE = ConnectivityState.IDLE
_TF = ConnectivityState.TRANSIENT_FAILURE

_Snapshot = Sequence[tuple[SubchannelLike, Mapping[str, Any]]]


class NoReadyPicker(Picker):
    """Nothing is ready: every call waits for the next picker (or fails fast)."""

    def pick(self, info: PickInfo) -> PickResult | None:
        return None


_NO_READY = NoReadyPicker()


class _Entry:
    __slots__ = ("endpoint", "on_done", "state", "subchannel")

    def __init__(self, endpoint: Endpoint, subchannel: SubchannelLike) -> None:
        self.endpoint = endpoint
        self.subchannel = subchannel
        self.state = subchannel.state
        self.on_done: OnDone | None = None


class _OutlierReport:
    """A subchannel's ``on_done``: feeds its call results to the balancer's outlier tracker."""

    __slots__ = ("balancer", "entry")

    def __init__(self, balancer: SubchannelListBalancer, entry: _Entry) -> None:
        self.balancer = balancer
        self.entry = entry

    def __call__(self, latency: float, connection_failure: bool, failure: bool) -> None:
        self.balancer._record_outcome(self.entry, latency, connection_failure, failure)


class SubchannelListBalancer(Balancer):
    """Base of the list-based policies; subclasses implement :meth:`build_picker`."""

    def __init__(
        self,
        helper: BalancerHelper,
        *,
        outlier: OutlierConfig | None = DEFAULT_OUTLIER,
        outlier_detection: OutlierDetectionConfig | None = DEFAULT_OUTLIER_DETECTION,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(helper)
        self._entries: dict[Hashable, _Entry] = {}
        self._by_subchannel: dict[int, _Entry] = {}
        self._outliers = OutlierTracker(
            helper,
            outlier,
            outlier_detection,
            rng,
            ready=lambda: [k for k, e in self._entries.items() if e.state is _READY],
            name=lambda key: self._entries[key].endpoint if key in self._entries else key,
            refresh=self._refresh,
        )
        self._published: tuple[ConnectivityState, _Snapshot] | None = None
        self._closed = False

    # -- what subclasses use --------------------------------------------------------------
    @abc.abstractmethod
    def build_picker(self, ready: Sequence[SubchannelLike]) -> Picker:
        """A picker over ``ready`` (never empty; in resolver order)."""

    def endpoint_of(self, subchannel: SubchannelLike) -> Endpoint:
        """The latest endpoint (with the resolver's newest attributes) of one of our
        subchannels; ``subchannel.endpoint`` may still carry the attributes it was made with."""
        entry = self._by_subchannel.get(id(subchannel))
        return entry.endpoint if entry is not None else subchannel.endpoint

    def on_done_of(self, subchannel: SubchannelLike) -> OnDone | None:
        """The per-subchannel outcome callback (outlier reporting), or None when it is off."""
        entry = self._by_subchannel.get(id(subchannel))
        return entry.on_done if entry is not None else None

    def pick_result(self, subchannel: SubchannelLike) -> PickResult:
        """A reusable :class:`PickResult` for ``subchannel`` (built once per picker)."""
        return PickResult(subchannel, self.on_done_of(subchannel))

    def endpoint_removed(self, key: Hashable) -> None:
        """Hook: an endpoint left the resolver's set (drop per-endpoint state)."""

    @property
    def outlier_detector(self) -> OutlierDetector | None:
        """The A50 detector's state (ejected endpoints, counters), or None when it is off."""
        return self._outliers.detector

    # -- Balancer ---------------------------------------------------------------------------
    def update_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        if self._closed:
            return
        old = self._entries
        new: dict[Hashable, _Entry] = {}
        created: list[_Entry] = []
        for endpoint in endpoints:
            key = endpoint.key
            if key in new:
                continue  # duplicate address: first one wins
            entry = old.get(key)
            if entry is None:
                entry = _Entry(endpoint, self.helper.create_subchannel(endpoint))
                if self._outliers.enabled:
                    entry.on_done = _OutlierReport(self, entry)
                self._by_subchannel[id(entry.subchannel)] = entry
                created.append(entry)
            else:
                entry.endpoint = endpoint
            new[key] = entry
        removed = [entry for key, entry in old.items() if key not in new]
        self._entries = new
        for entry in removed:
            del self._by_subchannel[id(entry.subchannel)]
        self._outliers.set_keys(new)
        for entry in created:
            if entry.state in (_IDLE, _CONNECTING):
                entry.subchannel.request_connection()
        self._refresh()
        for entry in removed:
            self.helper.remove_subchannel(entry.subchannel)
            self.endpoint_removed(entry.endpoint.key)

    def update_subchannel_state(self, subchannel: SubchannelLike, state: ConnectivityState) -> None:
        entry = self._by_subchannel.get(id(subchannel))
        if self._closed or entry is None or entry.subchannel is not subchannel:
            return  # a removed subchannel's late news
        entry.state = state
        if state is _IDLE:
            subchannel.request_connection()
        self._refresh()

    def resolver_error(self, error: Exception) -> None:
        if not self._entries and not self._closed:
            self._publish(_TF, [])

    def close(self) -> None:
        self._closed = True
        self._outliers.close()

    # -- internals --------------------------------------------------------------------------
    def _aggregate(self) -> ConnectivityState:
        connecting = idle = False
        for entry in self._entries.values():
            state = entry.state
            if state is _READY:
                return _READY
            if state is _IDLE and waits_for_call(entry.subchannel):
                idle = True
            elif state is _CONNECTING or state is _IDLE:
                connecting = True
        return _CONNECTING if connecting else _IDLE if idle else _TF

    def _eligible(self, now: float) -> list[_Entry]:
        ready = [e for e in self._entries.values() if e.state is _READY]
        outliers = self._outliers
        if not outliers.enabled:
            return ready
        kept = [e for e in ready if not outliers.is_ejected(e.endpoint.key, now)]
        return kept or ready  # never leave nothing ready because of ejection

    def _refresh(self) -> None:
        """Publish a new picker if the state, the eligible set or its attributes changed."""
        if self._closed:
            return
        now = self.helper.now()
        self._publish(self._aggregate(), self._eligible(now))
        self._outliers.refreshed(now)

    def _publish(self, state: ConnectivityState, eligible: list[_Entry]) -> None:
        snapshot = (state, [(e.subchannel, e.endpoint.attributes) for e in eligible])
        previous = self._published
        if previous is not None and previous[0] is state and _same(previous[1], snapshot[1]):
            return
        self._published = snapshot
        picker = self.build_picker([e.subchannel for e in eligible]) if eligible else _NO_READY
        self.helper.update_picker(state, picker)

    def _record_outcome(
        self, entry: _Entry, latency: float, connection_failure: bool, failure: bool
    ) -> None:
        key = entry.endpoint.key
        if self._closed or self._entries.get(key) is not entry:
            return
        if latency <= 0.0 and not connection_failure:
            return  # a pick that was not used: no news
        self._outliers.record(key, connection_failure, failure)


def _same(a: _Snapshot, b: _Snapshot) -> bool:
    return len(a) == len(b) and all(
        sa is sb and attrs_a == attrs_b for (sa, attrs_a), (sb, attrs_b) in zip(a, b, strict=True)
    )

"""pick_first: connect to the endpoints in order, one at a time, and send every call to the
first that becomes READY.

- A pass tries the endpoints in resolver order: the next one is tried when the current one
  reports TRANSIENT_FAILURE. After a whole pass fails the state is TRANSIENT_FAILURE and every
  subchannel keeps retrying on its own backoff (asked again whenever it reports IDLE): the first
  one to become READY wins.
- Once one is READY the others are removed (no idle connections kept open).
- When the chosen one is lost, or leaves the resolver's set, a new pass starts from the first.
  A subchannel that lost its connection waits IDLE for the next call to reconnect it (see
  :func:`~rpcfw.balancer.base.waits_for_call`); while the pass waits on one, the state is IDLE.
- A resolver update that still contains the chosen endpoint changes nothing else.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from .base import (
    Balancer,
    BalancerHelper,
    ConnectivityState,
    Endpoint,
    Picker,
    PickInfo,
    PickResult,
    SubchannelLike,
    waits_for_call,
)
from .subchannel_list import NoReadyPicker

__all__ = ["PickFirstBalancer", "PickFirstPicker"]

_READY = ConnectivityState.READY
_IDLE = ConnectivityState.IDLE
_CONNECTING = ConnectivityState.CONNECTING
_TF = ConnectivityState.TRANSIENT_FAILURE


class PickFirstPicker(Picker):
    """Sends every call to the one selected subchannel."""

    __slots__ = ("_result",)

    def __init__(self, subchannel: SubchannelLike) -> None:
        self._result = PickResult(subchannel)

    def pick(self, info: PickInfo) -> PickResult | None:
        return self._result


class PickFirstBalancer(Balancer):
    """The ``pick_first`` policy: connect to the endpoints in order and send every call to the first
    that becomes READY (see the module docstring)."""

    def __init__(self, helper: BalancerHelper) -> None:
        super().__init__(helper)
        self._endpoints: list[Endpoint] = []
        self._subchannels: dict[Hashable, SubchannelLike] = {}
        self._selected: SubchannelLike | None = None
        self._index = 0  # the endpoint being tried in the current pass; -1 after a failed pass
        self._published: tuple[ConnectivityState, SubchannelLike | None] | None = None
        self._closed = False

    @property
    def selected(self) -> SubchannelLike | None:
        return self._selected

    def update_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        if self._closed:
            return
        unique: dict[Hashable, Endpoint] = {}
        for endpoint in endpoints:
            unique.setdefault(endpoint.key, endpoint)
        self._endpoints = list(unique.values())
        removed = [sc for key, sc in self._subchannels.items() if key not in unique]
        self._subchannels = {k: sc for k, sc in self._subchannels.items() if k in unique}
        if self._selected is None or self._selected.endpoint.key not in unique:
            self._start_pass()
        for subchannel in removed:
            self.helper.remove_subchannel(subchannel)

    def update_subchannel_state(self, subchannel: SubchannelLike, state: ConnectivityState) -> None:
        key = subchannel.endpoint.key
        if self._closed or self._subchannels.get(key) is not subchannel:
            return
        if subchannel is self._selected:
            if state is not _READY:
                self._start_pass()  # lost it: start over from the first endpoint
            return
        if state is _READY:
            self._select(subchannel)
        elif state is _TF:
            if self._index >= 0 and self._current() is subchannel:
                self._index += 1
                self._try_current()
        elif state is _IDLE and self._index < 0:
            subchannel.request_connection()
        elif self._index >= 0 and self._current() is subchannel:  # IDLE or CONNECTING
            if state is _IDLE:
                subchannel.request_connection()
            self._publish_connecting(subchannel)

    def resolver_error(self, error: Exception) -> None:
        if not self._endpoints and not self._closed:
            self._publish(_TF, None)

    def close(self) -> None:
        self._closed = True

    # -- internals --------------------------------------------------------------------------
    def _current(self) -> SubchannelLike | None:
        if 0 <= self._index < len(self._endpoints):
            return self._subchannels.get(self._endpoints[self._index].key)
        return None

    def _start_pass(self) -> None:
        self._selected = None
        self._index = 0
        self._try_current()

    def _try_current(self) -> None:
        """Connect to the endpoint at ``_index``, skipping ones still backing off (or conclude
        the pass)."""
        while self._index < len(self._endpoints):
            endpoint = self._endpoints[self._index]
            subchannel = self._subchannels.get(endpoint.key)
            if subchannel is None:
                subchannel = self.helper.create_subchannel(endpoint)
                self._subchannels[endpoint.key] = subchannel
            if subchannel.state is _READY:
                self._select(subchannel)
                return
            if subchannel.state is not _TF:
                subchannel.request_connection()
                self._publish_connecting(subchannel)
                return
            self._index += 1  # still backing off from an earlier attempt: try the next one
        self._index = -1  # the pass failed: every subchannel retries, the first READY wins
        self._publish(_TF, None)
        for subchannel in list(self._subchannels.values()):
            if subchannel.state is _IDLE:
                subchannel.request_connection()

    def _publish_connecting(self, current: SubchannelLike) -> None:
        self._publish(_IDLE if waits_for_call(current) else _CONNECTING, None)

    def _select(self, subchannel: SubchannelLike) -> None:
        self._selected = subchannel
        self._index = -1
        others = [sc for sc in self._subchannels.values() if sc is not subchannel]
        self._subchannels = {subchannel.endpoint.key: subchannel}
        self._publish(_READY, subchannel)
        for other in others:
            self.helper.remove_subchannel(other)

    def _publish(self, state: ConnectivityState, subchannel: SubchannelLike | None) -> None:
        previous = self._published
        if previous is not None and previous[0] is state and previous[1] is subchannel:
            return
        self._published = (state, subchannel)
        picker: Picker = PickFirstPicker(subchannel) if subchannel is not None else NoReadyPicker()
        self.helper.update_picker(state, picker)

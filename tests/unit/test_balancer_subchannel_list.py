"""SubchannelListBalancer: diffing, connecting, aggregate state, pickers, outlier ejection."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from rpcfw.balancer.base import (
    BalancerHelper,
    ConnectivityState,
    Picker,
    SubchannelLike,
)
from rpcfw.balancer.round_robin import RoundRobinBalancer, RoundRobinPicker
from rpcfw.balancer.subchannel_list import SubchannelListBalancer
from rpcfw.policy.outlier import OutlierConfig
from rpcfw.policy.outlier_detection import OutlierDetectionConfig

from .fakes import FakeHelper, endpoint, endpoints

IDLE = ConnectivityState.IDLE
CONNECTING = ConnectivityState.CONNECTING
READY = ConnectivityState.READY
TF = ConnectivityState.TRANSIENT_FAILURE


class Recording(SubchannelListBalancer):
    """Records what build_picker was given."""

    def __init__(
        self, helper: BalancerHelper, **kwargs: OutlierConfig | OutlierDetectionConfig | None
    ) -> None:
        super().__init__(helper, **kwargs)
        self.built: list[list[SubchannelLike]] = []

    def build_picker(self, ready: Sequence[SubchannelLike]) -> Picker:
        self.built.append(list(ready))
        return RoundRobinPicker([self.pick_result(sc) for sc in ready])


def setup(**kwargs: OutlierConfig | OutlierDetectionConfig | None) -> tuple[FakeHelper, Recording]:
    helper = FakeHelper()
    balancer = Recording(helper, **kwargs)
    helper.balancer = balancer
    return helper, balancer


def ports(subchannels: Sequence[SubchannelLike]) -> list[int]:
    return [sc.endpoint.port for sc in subchannels]


# -- diffing ----------------------------------------------------------------------------------
def test_creates_one_subchannel_per_endpoint_and_asks_each_to_connect() -> None:
    helper, balancer = setup()
    balancer.update_endpoints(endpoints(1, 2, 3))
    assert [sc.port for sc in helper.created] == [1, 2, 3]
    assert all(sc.connect_requests == 1 for sc in helper.created)
    assert helper.state is CONNECTING
    assert helper.pick() is None


def test_duplicate_addresses_get_one_subchannel() -> None:
    helper, balancer = setup()
    balancer.update_endpoints(endpoints(1, 1, 2))
    assert [sc.port for sc in helper.created] == [1, 2]


def test_diff_adds_removes_and_keeps_the_same_subchannel() -> None:
    helper, balancer = setup()
    balancer.update_endpoints(endpoints(1, 2, 3))
    one, two, three = helper.created
    helper.make_ready()
    balancer.update_endpoints([endpoint(2, weight=5), endpoint(3), endpoint(4)])
    assert helper.removed == [one]
    assert helper.subchannel(2) is two and helper.subchannel(3) is three  # kept, same objects
    assert helper.subchannel(4).connect_requests == 1
    assert balancer.endpoint_of(two).attributes == {"weight": 5}  # new attributes taken
    assert two.connect_requests == 1  # a kept subchannel is not disturbed
    assert ports(balancer.built[-1]) == [2, 3]
    assert helper.state is READY


def test_removed_subchannels_go_after_the_new_picker_is_published() -> None:
    order: list[str] = []

    class OrderHelper(FakeHelper):
        def update_picker(self, state: ConnectivityState, picker: Picker) -> None:
            order.append("picker")
            super().update_picker(state, picker)

        def remove_subchannel(self, subchannel: Any) -> None:
            order.append("remove")
            super().remove_subchannel(subchannel)

    helper = OrderHelper()
    balancer = Recording(helper)
    helper.balancer = balancer
    balancer.update_endpoints(endpoints(1, 2))
    helper.make_ready()
    order.clear()
    balancer.update_endpoints(endpoints(2))
    assert order == ["picker", "remove"]


def test_attribute_change_rebuilds_the_picker_same_attributes_do_not() -> None:
    helper, balancer = setup()
    balancer.update_endpoints([endpoint(1, weight=1), endpoint(2)])
    helper.make_ready()
    builds = len(balancer.built)
    balancer.update_endpoints([endpoint(1, weight=1), endpoint(2)])
    assert len(balancer.built) == builds
    balancer.update_endpoints([endpoint(1, weight=3), endpoint(2)])
    assert len(balancer.built) == builds + 1


def test_resolver_error_keeps_the_current_set() -> None:
    helper, balancer = setup()
    balancer.update_endpoints(endpoints(1, 2))
    helper.make_ready()
    updates = len(helper.updates)
    balancer.resolver_error(OSError("etcd down"))
    assert helper.removed == []
    assert len(helper.updates) == updates
    assert helper.pick() is not None


def test_resolver_error_before_any_endpoints_is_transient_failure() -> None:
    helper, balancer = setup()
    balancer.resolver_error(OSError("etcd down"))
    assert helper.state is TF
    assert helper.pick() is None


def test_empty_update_removes_everything_and_reports_transient_failure() -> None:
    helper, balancer = setup()
    balancer.update_endpoints(endpoints(1, 2))
    helper.make_ready()
    balancer.update_endpoints([])
    assert len(helper.removed) == 2
    assert helper.state is TF
    assert helper.pick() is None


def test_late_state_from_a_removed_subchannel_is_ignored() -> None:
    helper, balancer = setup()
    balancer.update_endpoints(endpoints(1, 2))
    one = helper.subchannel(1)
    balancer.update_endpoints(endpoints(2))
    updates = len(helper.updates)
    helper.set_state(one, READY)
    assert len(helper.updates) == updates


# -- connectivity -----------------------------------------------------------------------------
def test_aggregate_state() -> None:
    helper, balancer = setup()
    balancer.update_endpoints(endpoints(1, 2))
    one, two = helper.created
    helper.set_state(one, CONNECTING)
    assert helper.state is CONNECTING
    helper.set_state(one, TF)
    assert helper.state is CONNECTING  # two is still IDLE (connecting)
    helper.set_state(two, TF)
    assert helper.state is TF
    helper.set_state(two, READY)
    assert helper.state is READY
    helper.set_state(one, READY)
    assert ports(balancer.built[-1]) == [1, 2]


def test_a_subchannel_that_goes_idle_is_asked_to_reconnect() -> None:
    helper, balancer = setup()
    balancer.update_endpoints(endpoints(1, 2))
    one = helper.subchannel(1)
    helper.make_ready()
    helper.set_state(one, IDLE)
    assert one.connect_requests == 2
    assert ports(balancer.built[-1]) == [2]
    helper.set_state(one, TF)  # the subchannel backs off on its own: no request
    assert one.connect_requests == 2


def test_no_picker_rebuild_when_the_ready_set_is_unchanged() -> None:
    helper, balancer = setup()
    balancer.update_endpoints(endpoints(1, 2))
    helper.make_ready([1])
    builds = len(balancer.built)
    helper.set_state(helper.subchannel(2), CONNECTING)
    helper.set_state(helper.subchannel(2), TF)
    assert len(balancer.built) == builds


def test_close_cancels_timers_and_ignores_later_news() -> None:
    helper, balancer = setup()
    balancer.update_endpoints(endpoints(1, 2, 3))
    helper.make_ready()
    eject(helper, 1)
    assert helper.pending_timers() == 2  # the un-ejection and A50's interval (calls came)
    balancer.close()
    assert helper.pending_timers() == 0
    updates = len(helper.updates)
    helper.set_state(helper.subchannel(2), IDLE)
    assert len(helper.updates) == updates


# -- outlier ejection through the balancer ----------------------------------------------------
def eject(helper: FakeHelper, port: int, failures: int = 5) -> None:
    """Report ``failures`` connection failures from calls picked on ``port``."""
    subchannel = helper.subchannel(port)
    reported = 0
    for _ in range(100):
        result = helper.pick()
        assert result is not None and result.on_done is not None
        if result.subchannel is subchannel:
            result.on_done(0.01, True, True)
            reported += 1
            if reported == failures:
                break
        else:
            result.on_done(0.01, False, False)
    helper.advance(0.0)  # the rebuild is queued through call_later


def picked_ports(helper: FakeHelper, n: int = 30) -> set[int]:
    return {helper.pick_port() for _ in range(n)}


def test_five_connection_failures_eject_until_the_backoff_ends() -> None:
    helper = FakeHelper()
    balancer = RoundRobinBalancer(helper, rng=random.Random(0))
    helper.balancer = balancer
    balancer.update_endpoints(endpoints(1, 2, 3))
    helper.make_ready()
    eject(helper, 1, failures=4)
    assert picked_ports(helper) == {1, 2, 3}
    eject(helper, 1, failures=1)  # the fifth in a row
    assert picked_ports(helper) == {2, 3}
    helper.advance(0.999)
    assert picked_ports(helper) == {2, 3}
    helper.advance(0.001)  # the 1 s ejection ends: the call_later rebuild brings it back
    assert picked_ports(helper) == {1, 2, 3}
    # a second ejection lasts twice as long
    eject(helper, 1)
    helper.advance(1.5)
    assert picked_ports(helper) == {2, 3}
    helper.advance(0.5)
    assert picked_ports(helper) == {1, 2, 3}


def test_successes_in_between_prevent_ejection() -> None:
    helper, balancer = setup()
    balancer.update_endpoints(endpoints(1, 2))
    helper.make_ready()
    one = helper.subchannel(1)
    for _ in range(3):
        eject(helper, 1, failures=4)
        result = helper.pick()
        while result is not None and result.subchannel is not one:
            result = helper.pick()
        assert result is not None and result.on_done is not None
        result.on_done(0.01, False, False)
    helper.advance(0.0)
    assert ports(balancer.built[-1]) == [1, 2]


def test_never_ejects_the_last_ready_subchannel() -> None:
    helper, balancer = setup(outlier=OutlierConfig(max_ejection_percent=100.0))
    balancer.update_endpoints(endpoints(1, 2))
    helper.make_ready()
    eject(helper, 1)
    assert ports(balancer.built[-1]) == [2]
    eject(helper, 2, failures=20)
    assert ports(balancer.built[-1]) == [2]  # 2 stays: it is the last one
    assert picked_ports(helper) == {2}


def test_max_ejection_percent_caps_ejections() -> None:
    helper, balancer = setup()  # 50 % of 4 = 2
    balancer.update_endpoints(endpoints(1, 2, 3, 4))
    helper.make_ready()
    for port in (1, 2, 3):
        eject(helper, port)
    assert ports(balancer.built[-1]) == [3, 4]


def test_a_lone_ready_subchannel_is_never_ejected() -> None:
    helper, balancer = setup(outlier=OutlierConfig(max_ejection_percent=100.0))
    balancer.update_endpoints(endpoints(1))
    helper.make_ready()
    eject(helper, 1, failures=10)
    assert helper.pick_port() == 1


def test_unused_picks_and_removed_subchannels_report_nothing() -> None:
    helper, balancer = setup()
    balancer.update_endpoints(endpoints(1, 2, 3))
    helper.make_ready()
    results = [helper.pick() for _ in range(30)]
    balancer.update_endpoints(endpoints(2, 3))  # 1 removed with calls in flight
    builds = len(balancer.built)
    for result in results:
        assert result is not None and result.on_done is not None
        if result.subchannel.endpoint.port == 1:
            result.on_done(0.01, True, True)  # late failures from the removed one are ignored
        else:
            result.on_done(0.0, False, False)  # picks never used report nothing
    helper.advance(0.0)
    assert helper.pending_timers() == 0
    assert len(balancer.built) == builds


def test_outlier_ejection_can_be_turned_off() -> None:
    helper, balancer = setup(outlier=None, outlier_detection=None)
    balancer.update_endpoints(endpoints(1, 2))
    helper.make_ready()
    result = helper.pick()
    assert result is not None and result.on_done is None


def test_an_unused_pick_does_not_reset_the_failure_count() -> None:
    helper, balancer = setup()
    balancer.update_endpoints(endpoints(1, 2, 3))
    helper.make_ready()
    eject(helper, 1, failures=4)
    one = helper.subchannel(1)
    result = helper.pick()
    while result is not None and result.subchannel is not one:
        result = helper.pick()
    assert result is not None and result.on_done is not None
    result.on_done(0.0, False, False)  # the channel raced a state change and did not use it
    eject(helper, 1, failures=1)
    assert ports(balancer.built[-1]) == [2, 3]

from __future__ import annotations

from rpcfw.balancer.base import ConnectivityState
from rpcfw.balancer.pick_first import PickFirstBalancer

from .fakes import FakeHelper, endpoints

IDLE = ConnectivityState.IDLE
CONNECTING = ConnectivityState.CONNECTING
READY = ConnectivityState.READY
TF = ConnectivityState.TRANSIENT_FAILURE


def setup(*ports: int) -> tuple[FakeHelper, PickFirstBalancer]:
    helper = FakeHelper()
    balancer = PickFirstBalancer(helper)
    helper.balancer = balancer
    balancer.update_endpoints(endpoints(*ports))
    return helper, balancer


def test_connects_to_the_first_endpoint_only() -> None:
    helper, _ = setup(1, 2, 3)
    assert [sc.port for sc in helper.created] == [1]
    assert helper.created[0].connect_requests == 1
    assert helper.state is CONNECTING
    assert helper.pick() is None


def test_all_calls_go_to_the_first_ready() -> None:
    helper, _ = setup(1, 2, 3)
    helper.set_state(helper.subchannel(1), READY)
    assert helper.state is READY
    assert {helper.pick_port() for _ in range(10)} == {1}


def test_moves_on_in_order_after_a_failure() -> None:
    helper, balancer = setup(1, 2, 3)
    helper.set_state(helper.subchannel(1), TF)
    assert [sc.port for sc in helper.created] == [1, 2]
    helper.set_state(helper.subchannel(2), TF)
    helper.set_state(helper.subchannel(3), READY)
    assert helper.pick_port() == 3
    assert balancer.selected is helper.subchannel(3)
    assert sorted(sc.port for sc in helper.removed) == [1, 2]  # the others are dropped


def test_a_whole_failed_pass_is_transient_failure_then_first_ready_wins() -> None:
    helper, _ = setup(1, 2)
    helper.set_state(helper.subchannel(1), TF)
    helper.set_state(helper.subchannel(2), TF)
    assert helper.state is TF
    assert helper.pick() is None
    two = helper.subchannel(2)
    helper.set_state(two, IDLE)  # backoff over: asked again
    assert two.connect_requests == 2
    helper.set_state(two, READY)
    assert helper.pick_port() == 2


def test_losing_the_chosen_one_starts_a_new_pass() -> None:
    helper, _ = setup(1, 2)
    helper.set_state(helper.subchannel(1), TF)
    helper.set_state(helper.subchannel(2), READY)
    two = helper.subchannel(2)
    helper.set_state(two, IDLE)
    assert helper.state is CONNECTING
    assert helper.pick() is None
    one = helper.subchannel(1)  # a fresh subchannel for the first endpoint
    assert one.connect_requests == 1
    helper.set_state(one, TF)
    assert two.connect_requests == 2  # then the second again
    helper.set_state(two, READY)
    assert helper.pick_port() == 2


def test_an_update_keeping_the_chosen_endpoint_changes_nothing() -> None:
    helper, balancer = setup(1, 2)
    helper.set_state(helper.subchannel(1), READY)
    updates = len(helper.updates)
    balancer.update_endpoints(endpoints(0, 1, 2))
    assert len(helper.updates) == updates
    assert helper.pick_port() == 1


def test_an_update_dropping_the_chosen_endpoint_reconnects() -> None:
    helper, balancer = setup(1, 2)
    one = helper.subchannel(1)
    helper.set_state(one, READY)
    balancer.update_endpoints(endpoints(2, 3))
    assert one.removed
    assert helper.state is CONNECTING
    helper.set_state(helper.subchannel(2), READY)
    assert helper.pick_port() == 2
    helper.set_state(one, READY)  # late news from the removed one
    assert helper.pick_port() == 2


def test_empty_update_is_transient_failure() -> None:
    helper, balancer = setup(1)
    balancer.update_endpoints([])
    assert helper.state is TF
    assert helper.pick() is None
    assert helper.removed == helper.created


def test_resolver_error_keeps_the_choice() -> None:
    helper, balancer = setup(1)
    helper.set_state(helper.subchannel(1), READY)
    balancer.resolver_error(OSError("down"))
    assert helper.pick_port() == 1

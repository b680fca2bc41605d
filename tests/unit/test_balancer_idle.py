"""Balancers over subchannels that, after losing their connection, wait IDLE for a call to
reconnect them (``connect_deferred``, see ``rpcfw.balancer.base.waits_for_call``): the channel
reports IDLE, not CONNECTING (nothing is connecting) nor TRANSIENT_FAILURE, and CONNECTING again
once a call makes them connect."""

from __future__ import annotations

from rpcfw.balancer.base import ConnectivityState, waits_for_call
from rpcfw.balancer.pick_first import PickFirstBalancer
from rpcfw.balancer.round_robin import RoundRobinBalancer
from rpcfw.endpoint import Endpoint

from .fakes import FakeHelper, FakeSubchannel, endpoints

IDLE = ConnectivityState.IDLE
CONNECTING = ConnectivityState.CONNECTING
READY = ConnectivityState.READY
TF = ConnectivityState.TRANSIENT_FAILURE


class DeferringSubchannel(FakeSubchannel):
    """Like the channel's subchannels: after a lost connection, a request is only recorded."""

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint)
        self.lost = False
        self.connect_deferred = False

    def request_connection(self) -> None:
        super().request_connection()
        if self.state is IDLE and self.lost:
            self.connect_deferred = True


class DeferringHelper(FakeHelper):
    def create_subchannel(self, endpoint: Endpoint) -> DeferringSubchannel:
        subchannel = DeferringSubchannel(endpoint)
        self.created.append(subchannel)
        return subchannel

    def lose(self, subchannel: DeferringSubchannel) -> None:
        subchannel.lost = True
        self.set_state(subchannel, IDLE)

    def call_arrives(self, subchannel: DeferringSubchannel) -> None:
        """What the channel's pick does: connect what waits for a call."""
        assert subchannel.connect_deferred
        subchannel.connect_deferred = subchannel.lost = False
        self.set_state(subchannel, CONNECTING)


def test_waits_for_call_needs_idle_and_a_deferred_request() -> None:
    subchannel = DeferringSubchannel(endpoints(1)[0])
    assert not waits_for_call(subchannel)
    subchannel.connect_deferred = True
    assert waits_for_call(subchannel)
    subchannel.state = CONNECTING
    assert not waits_for_call(subchannel)
    assert not waits_for_call(FakeSubchannel(endpoints(1)[0]))  # no such attribute: never


def test_pick_first_is_idle_after_losing_its_only_endpoint_until_a_call_comes() -> None:
    helper = DeferringHelper()
    helper.balancer = balancer = PickFirstBalancer(helper)
    balancer.update_endpoints(endpoints(1))
    (one,) = helper.created
    helper.set_state(one, READY)
    helper.lose(one)
    assert helper.state is IDLE and helper.pick() is None
    assert one.connect_deferred  # asked, and waiting for a call
    balancer.update_endpoints(endpoints(1))  # a re-resolution changes nothing: still idle
    assert helper.state is IDLE
    helper.call_arrives(one)
    assert helper.state is CONNECTING
    helper.set_state(one, READY)
    assert helper.pick_port() == 1


def test_pick_first_pass_tries_fresh_endpoints_then_idles_on_the_lost_one() -> None:
    helper = DeferringHelper()
    helper.balancer = balancer = PickFirstBalancer(helper)
    balancer.update_endpoints(endpoints(1, 2))
    helper.set_state(helper.subchannel(1), TF)
    two = helper.subchannel(2)
    helper.set_state(two, READY)
    helper.lose(two)
    one = helper.subchannel(1)  # a fresh subchannel for the first endpoint: it connects
    assert helper.state is CONNECTING and one.connect_requests == 1
    helper.set_state(one, TF)  # then the lost one, which waits for a call
    assert helper.state is IDLE and two.connect_deferred
    helper.call_arrives(two)
    assert helper.state is CONNECTING
    helper.set_state(two, TF)  # really down: the pass failed, calls fail fast
    assert helper.state is TF


def test_round_robin_is_idle_when_every_endpoint_lost_its_connection() -> None:
    helper = DeferringHelper()
    helper.balancer = balancer = RoundRobinBalancer(helper)
    balancer.update_endpoints(endpoints(1, 2))
    helper.make_ready()
    one, two = helper.subchannel(1), helper.subchannel(2)
    helper.lose(one)
    assert helper.state is READY and helper.pick_port() == 2  # the other one still serves
    helper.lose(two)
    assert helper.state is IDLE and helper.pick() is None
    helper.call_arrives(one)
    assert helper.state is CONNECTING  # one connects, two still waits
    helper.set_state(one, TF)
    assert helper.state is IDLE  # nothing connecting; the next call tries two
    helper.call_arrives(two)
    helper.set_state(two, TF)
    assert helper.state is TF

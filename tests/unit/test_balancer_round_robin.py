from __future__ import annotations

import random
from collections import Counter

from rpcfw.balancer.base import ConnectivityState, PickInfo
from rpcfw.balancer.round_robin import RoundRobinBalancer, RoundRobinPicker

from .fakes import FakeHelper, endpoints

READY = ConnectivityState.READY
IDLE = ConnectivityState.IDLE
TF = ConnectivityState.TRANSIENT_FAILURE


def setup(*ports: int, seed: int = 0) -> tuple[FakeHelper, RoundRobinBalancer]:
    helper = FakeHelper()
    balancer = RoundRobinBalancer(helper, rng=random.Random(seed))
    helper.balancer = balancer
    balancer.update_endpoints(endpoints(*ports))
    return helper, balancer


def test_rotates_exactly_in_a_fixed_cycle() -> None:
    helper, _ = setup(1, 2, 3, 4)
    helper.make_ready()
    picks = [helper.pick_port() for _ in range(400)]
    assert Counter(picks) == {1: 100, 2: 100, 3: 100, 4: 100}
    cycle = picks[:4]
    assert sorted(cycle) == [1, 2, 3, 4]
    assert picks == cycle * 100


def test_skips_subchannels_that_are_not_ready() -> None:
    helper, _ = setup(1, 2, 3)
    helper.make_ready([1, 3])
    assert Counter(helper.pick_port() for _ in range(100)) == {1: 50, 3: 50}
    helper.set_state(helper.subchannel(3), TF)
    assert {helper.pick_port() for _ in range(10)} == {1}


def test_picker_returns_none_when_none_ready() -> None:
    helper, _ = setup(1, 2)
    assert helper.pick() is None
    helper.make_ready([1])
    helper.set_state(helper.subchannel(1), IDLE)
    assert helper.pick() is None
    assert helper.state is ConnectivityState.CONNECTING


def test_a_subchannel_going_idle_is_asked_to_reconnect() -> None:
    helper, _ = setup(1, 2)
    helper.make_ready()
    one = helper.subchannel(1)
    assert one.connect_requests == 1
    helper.set_state(one, IDLE)
    assert one.connect_requests == 2
    assert {helper.pick_port() for _ in range(10)} == {2}


def test_start_offset_is_random_per_picker_but_seedable() -> None:
    firsts = set()
    for seed in range(20):
        helper, _ = setup(1, 2, 3, 4, 5, seed=seed)
        helper.make_ready()
        firsts.add(helper.pick_port())
    assert len(firsts) > 1
    again = []
    for _ in range(2):
        helper, _ = setup(1, 2, 3, 4, 5, seed=42)
        helper.make_ready()
        again.append([helper.pick_port() for _ in range(7)])
    assert again[0] == again[1]


def test_picker_start_index() -> None:
    helper, balancer = setup(1, 2, 3)
    helper.make_ready()
    results = [balancer.pick_result(sc) for sc in helper.created]
    picker = RoundRobinPicker(results, start=4)
    picks = [picker.pick(PickInfo("/svc/M")) for _ in range(3)]
    assert [p.subchannel.endpoint.port for p in picks if p is not None] == [2, 3, 1]

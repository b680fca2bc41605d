from __future__ import annotations

import heapq
import random
from collections import Counter

import pytest

from rpcfw.balancer.base import PickResult
from rpcfw.balancer.p2c import P2CBalancer, P2CConfig

from .fakes import FakeHelper, endpoints

FAST, SLOW = 0.010, 0.100


def setup(*ports: int, seed: int = 1, **config: float) -> tuple[FakeHelper, P2CBalancer]:
    helper = FakeHelper()
    balancer = P2CBalancer(helper, rng=random.Random(seed), config=P2CConfig(**config))
    helper.balancer = balancer
    balancer.update_endpoints(endpoints(*ports))
    helper.make_ready()
    return helper, balancer


def pick(helper: FakeHelper) -> PickResult:
    result = helper.pick()
    assert result is not None and result.on_done is not None
    return result


def finish(result: PickResult, latency: float) -> None:
    assert result.on_done is not None
    result.on_done(latency, False, False)


def test_sequential_calls_avoid_the_endpoint_ten_times_slower() -> None:
    helper, _ = setup(1, 2, 3)
    latency = {1: FAST, 2: FAST, 3: SLOW}
    counts: Counter[int] = Counter()
    for _ in range(10_000):
        helper.advance(0.001)
        result = pick(helper)
        port = result.subchannel.endpoint.port
        counts[port] += 1
        finish(result, latency[port])
    assert counts[3] < 1_000, counts
    assert counts[3] > 0  # still probed now and then
    assert abs(counts[1] - counts[2]) < 1_500


def test_concurrent_calls_avoid_the_endpoint_ten_times_slower() -> None:
    """Eight calls always in flight, each ending after its endpoint's latency."""
    helper, _ = setup(1, 2, 3)
    latency = {1: FAST, 2: FAST, 3: SLOW}
    counts: Counter[int] = Counter()
    in_flight: list[tuple[float, int, PickResult]] = []
    for seq in range(10_000):
        while len(in_flight) >= 8:
            at, _, done = heapq.heappop(in_flight)
            helper.advance(max(0.0, at - helper.clock))
            finish(done, latency[done.subchannel.endpoint.port])
        result = pick(helper)
        port = result.subchannel.endpoint.port
        counts[port] += 1
        heapq.heappush(in_flight, (helper.clock + latency[port], seq, result))
    assert counts[3] < 1_000, counts


def test_a_hung_call_raises_its_endpoints_cost() -> None:
    helper, balancer = setup(1, 2)
    for _ in range(20):  # give both a latency sample
        helper.advance(0.01)
        result = pick(helper)
        finish(result, FAST)
    one = helper.subchannel(1)
    hung = pick(helper)
    while hung.subchannel is not one:
        finish(hung, FAST)
        hung = pick(helper)
    assert balancer.load_of(one).inflight == 1
    picks = []
    for _ in range(20):
        result = pick(helper)
        picks.append(result.subchannel.endpoint.port)
        finish(result, FAST)
    assert set(picks) == {2}
    finish(hung, FAST)
    assert balancer.load_of(one).inflight == 0


def test_on_done_releases_in_flight_exactly_once() -> None:
    helper, balancer = setup(1)
    result = pick(helper)
    load = balancer.load_of(result.subchannel)
    assert load.inflight == 1
    assert result.on_done is not None
    result.on_done(0.02, False, False)
    result.on_done(0.02, False, False)
    result.on_done(0.02, True, True)
    assert load.inflight == 0
    assert load.ewma == pytest.approx(0.02)


def test_failures_and_unused_picks_release_without_a_latency_sample() -> None:
    helper, balancer = setup(1)
    for latency, failure in ((0.0, False), (0.5, True)):
        result = pick(helper)
        assert result.on_done is not None
        result.on_done(latency, failure, failure)
    load = balancer.load_of(helper.subchannel(1))
    assert load.inflight == 0
    assert load.ewma is None


def test_ewma_decays_with_time() -> None:
    helper, balancer = setup(1, decay=10.0)
    finish(pick(helper), 0.1)
    helper.advance(10.0)  # one time constant: the new sample weighs 1 - 1/e
    finish(pick(helper), 0.0 + 1e-9)
    ewma = balancer.load_of(helper.subchannel(1)).ewma
    assert ewma == pytest.approx(0.1 / 2.718281828, rel=1e-3)


def test_load_survives_picker_rebuilds_and_goes_with_the_endpoint() -> None:
    helper, balancer = setup(1, 2, 3)
    result = pick(helper)
    subchannel = result.subchannel
    balancer.update_endpoints(endpoints(1, 2, 3, 4))  # rebuilds the picker
    assert balancer.load_of(subchannel).inflight == 1
    finish(result, FAST)
    assert balancer.load_of(subchannel).inflight == 0


def test_a_new_endpoint_is_probed_at_once_but_not_flooded() -> None:
    helper, balancer = setup(1, 2)
    for _ in range(50):
        helper.advance(0.01)
        finish(pick(helper), FAST)
    balancer.update_endpoints(endpoints(1, 2, 3))
    helper.make_ready([3])
    held = [pick(helper) for _ in range(30)]  # none finish: in-flight grows everywhere
    ports = Counter(r.subchannel.endpoint.port for r in held)
    assert ports[3] == 1  # probed once, then penalised until its first answer
    for result in held:
        finish(result, FAST)


def test_a_starved_endpoint_is_forced_after_a_while() -> None:
    helper, _ = setup(1, 2, force_pick_after=3.0)
    latency = {1: FAST, 2: 10 * SLOW}
    picks = []
    for _ in range(4_000):
        helper.advance(0.001)
        result = pick(helper)
        picks.append(result.subchannel.endpoint.port)
        finish(result, latency[result.subchannel.endpoint.port])
    assert 1 <= picks.count(2) <= 4  # first probe plus one forced pick per 3 s


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError):
        P2CConfig(decay=0.0)

"""A50 outlier detection inside the list-based balancers (FakeHelper: manual clock, timers)."""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Callable

import pytest

from rpcfw.balancer.base import Balancer, BalancerHelper, ConnectivityState
from rpcfw.balancer.p2c import P2CBalancer
from rpcfw.balancer.ring_hash import RingHashBalancer
from rpcfw.balancer.round_robin import RoundRobinBalancer
from rpcfw.balancer.subchannel_list import SubchannelListBalancer
from rpcfw.balancer.weighted_round_robin import WeightedRoundRobinBalancer
from rpcfw.policy.outlier_detection import FailurePercentageEjection, OutlierDetectionConfig

from .fakes import FakeHelper, endpoints

READY = ConnectivityState.READY
TF = ConnectivityState.TRANSIENT_FAILURE

CONFIG = OutlierDetectionConfig(
    interval=1.0,
    base_ejection_time=3.0,
    failure_percentage_ejection=FailurePercentageEjection(request_volume=5),
)


def setup(
    ports: tuple[int, ...] = (1, 2, 3),
    factory: Callable[..., SubchannelListBalancer] = RoundRobinBalancer,
    config: OutlierDetectionConfig | None = CONFIG,
    **kwargs: object,
) -> tuple[FakeHelper, SubchannelListBalancer]:
    helper = FakeHelper()
    balancer = factory(helper, rng=random.Random(0), outlier_detection=config, **kwargs)
    helper.balancer = balancer
    balancer.update_endpoints(endpoints(*ports))
    helper.make_ready()
    return helper, balancer


def run_calls(
    helper: FakeHelper, n: int, failing: set[int], *, connection: bool = False
) -> Counter[int]:
    """``n`` picks, each finished at once: a failure on ``failing`` ports (DEADLINE_EXCEEDED or
    UNAVAILABLE: ``on_done(latency, connection, True)``), a success elsewhere."""
    counts: Counter[int] = Counter()
    for i in range(n):
        result = helper.pick(str(i).encode())
        assert result is not None and result.on_done is not None
        port = result.subchannel.endpoint.port
        counts[port] += 1
        bad = port in failing
        result.on_done(1.0 if bad else 0.01, bad and connection, bad)
    return counts


def test_a_failing_endpoint_is_ejected_at_the_next_interval_then_readmitted() -> None:
    helper, balancer = setup()
    counts = run_calls(helper, 30, failing={1})
    assert counts[1] == 10
    helper.advance(0.999)
    assert set(run_calls(helper, 30, failing={1})) == {1, 2, 3}  # no interval yet
    helper.advance(0.001)  # the interval: 20 failures of 20 on port 1
    assert set(run_calls(helper, 60, failing={1})) == {2, 3}
    detector = balancer.outlier_detector
    assert detector is not None and detector.ejected() == [("10.0.0.1", 1)]
    helper.advance(2.0)
    assert set(run_calls(helper, 30, failing=set())) == {2, 3}
    helper.advance(1.0)  # 3 s after the ejection, at an interval: back
    assert set(run_calls(helper, 30, failing=set())) == {1, 2, 3}


def test_statuses_that_are_answers_count_as_successes() -> None:
    helper, _ = setup()
    for _ in range(10):
        for result in (helper.pick() for _ in range(3)):
            assert result is not None and result.on_done is not None
            result.on_done(0.01, False, False)  # NOT_FOUND, INTERNAL, ...: the server answered
    helper.advance(1.0)
    assert set(run_calls(helper, 30, failing=set())) == {1, 2, 3}


def test_connection_failures_count_too() -> None:
    helper, balancer = setup(outlier=None)  # without the consecutive-failure ejection
    run_calls(helper, 15, failing={2}, connection=True)
    helper.advance(1.0)
    assert set(run_calls(helper, 30, failing=set())) == {1, 3}
    detector = balancer.outlier_detector
    assert detector is not None and detector.ejected() == [("10.0.0.1", 2)]


def test_unused_picks_are_not_counted() -> None:
    helper, balancer = setup()
    for _ in range(30):
        result = helper.pick()
        assert result is not None and result.on_done is not None
        result.on_done(0.0, False, False)
    assert helper.pending_timers() == 0  # nothing counted: no interval to run
    detector = balancer.outlier_detector
    assert detector is not None and detector.quiet


def test_the_last_ready_endpoint_is_never_ejected() -> None:
    config = OutlierDetectionConfig(
        interval=1.0,
        max_ejection_percent=100.0,
        failure_percentage_ejection=FailurePercentageEjection(request_volume=5),
    )
    helper, balancer = setup((1, 2), config=config)
    run_calls(helper, 20, failing={1, 2})
    helper.advance(1.0)
    detector = balancer.outlier_detector
    assert detector is not None and len(detector.ejected()) == 1  # the second is vetoed
    (left,) = set(run_calls(helper, 10, failing=set()))
    helper.set_state(helper.subchannel(left), TF)  # the one left fails to connect
    picked = set(run_calls(helper, 10, failing=set()))
    assert picked == {3 - left}  # only the ejected one is READY: it gets the calls


def test_max_ejection_percent_bounds_how_many_go() -> None:
    helper, _ = setup((1, 2, 3, 4))  # 10 %: one at a time
    run_calls(helper, 40, failing={1, 2, 3})
    helper.advance(1.0)
    assert set(run_calls(helper, 40, failing=set())) == {2, 3, 4}


def test_the_interval_timer_runs_while_there_is_something_to_do() -> None:
    helper, balancer = setup()
    detector = balancer.outlier_detector
    assert detector is not None
    assert helper.pending_timers() == 0  # no call yet: nothing to evaluate
    run_calls(helper, 3, failing=set())
    assert helper.pending_timers() == 1
    helper.advance(1.0)  # evaluates those 3 calls, then one more interval: nothing new
    helper.advance(5.0)
    assert detector.intervals == 2 and helper.pending_timers() == 0
    run_calls(helper, 30, failing={1})  # ejected at the next interval: ticks until it is back
    helper.advance(1.0)
    assert detector.ejected() == [("10.0.0.1", 1)]
    helper.advance(10.0)
    assert detector.ejected() == [] and detector.unejections == 1
    assert detector.multiplier(("10.0.0.1", 1)) == 0 and helper.pending_timers() == 0
    # 2 before; then the ejection's, 3 while ejected (back at the third), 1 for the decay
    assert detector.intervals == 2 + 1 + 3 + 1
    run_calls(helper, 3, failing=set())
    balancer.close()
    assert helper.pending_timers() == 0


def test_turned_off_there_is_no_timer_and_no_report() -> None:
    helper = FakeHelper()
    balancer = RoundRobinBalancer(helper, outlier=None, outlier_detection=None)
    helper.balancer = balancer
    balancer.update_endpoints(endpoints(1, 2))
    helper.make_ready()
    result = helper.pick()
    assert result is not None and result.on_done is None
    assert helper.pending_timers() == 0 and balancer.outlier_detector is None


def test_no_algorithm_means_no_detector() -> None:
    config = OutlierDetectionConfig(failure_percentage_ejection=None)
    helper, balancer = setup(config=config, outlier=None)
    result = helper.pick()
    assert result is not None and result.on_done is None
    assert balancer.outlier_detector is None and helper.pending_timers() == 0


def test_a_removed_endpoints_late_results_are_ignored() -> None:
    helper, balancer = setup()
    results = [helper.pick() for _ in range(30)]
    balancer.update_endpoints(endpoints(2, 3))
    for result in results:
        assert result is not None and result.on_done is not None
        result.on_done(1.0, False, True)  # port 1 is gone; 2 and 3 fail 10 each
    balancer.update_endpoints(endpoints(1, 2, 3))  # 1 is back, with a fresh record
    helper.make_ready([1])
    helper.advance(1.0)
    detector = balancer.outlier_detector
    assert detector is not None
    assert detector.ejected() == [("10.0.0.1", 2)]  # 1 had no calls: not evaluated


FACTORIES: list[Callable[..., Balancer]] = [
    RoundRobinBalancer,
    WeightedRoundRobinBalancer,
    P2CBalancer,
    RingHashBalancer,
]


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
def test_every_list_policy_applies_it(factory: Callable[..., SubchannelListBalancer]) -> None:
    helper, _ = setup((1, 2, 3, 4, 5), factory=factory)
    for _ in range(5):
        run_calls(helper, 40, failing={3})
    helper.advance(1.0)
    assert 3 not in run_calls(helper, 200, failing=set())


def test_configured_through_the_factory() -> None:
    factory: Callable[[BalancerHelper], Balancer] = functools.partial(
        RoundRobinBalancer, outlier_detection=CONFIG
    )
    balancer = factory(FakeHelper())
    assert isinstance(balancer, RoundRobinBalancer)
    detector = balancer.outlier_detector
    assert detector is not None and detector.config is CONFIG

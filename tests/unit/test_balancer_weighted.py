from __future__ import annotations

import random
from collections import Counter

import pytest

from rpcfw.balancer.weighted_round_robin import (
    WeightedRoundRobinBalancer,
    WeightedRoundRobinConfig,
    smooth_weighted_schedule,
)

from .fakes import FakeHelper, endpoint


def setup(weights: dict[int, int], seed: int = 0, **config: int) -> FakeHelper:
    helper = FakeHelper()
    balancer = WeightedRoundRobinBalancer(
        helper, rng=random.Random(seed), config=WeightedRoundRobinConfig(**config)
    )
    helper.balancer = balancer
    balancer.update_endpoints([endpoint(port, weight=w) for port, w in weights.items()])
    helper.make_ready()
    return helper


def max_run(sequence: list[int], value: int) -> int:
    best = run = 0
    for item in sequence:
        run = run + 1 if item == value else 0
        best = max(best, run)
    return best


def test_proportions_hold_within_two_percent_over_10000_picks() -> None:
    helper = setup({1: 1, 2: 2, 3: 7})
    counts = Counter(helper.pick_port() for _ in range(10_000))
    for port, share in {1: 0.1, 2: 0.2, 3: 0.7}.items():
        assert abs(counts[port] / 10_000 - share) < 0.02


def test_smooth_no_long_runs_for_the_heavy_one() -> None:
    helper = setup({1: 1, 2: 2, 3: 7})
    picks = [helper.pick_port() for _ in range(1_000)]
    # 7 of every 10 with 3 others in between: runs of at most ceil(7 / 3) = 3
    assert max_run(picks, 3) <= 3
    assert max_run(picks, 2) == 1 and max_run(picks, 1) == 1


def test_nginx_schedule_is_exact_per_period() -> None:
    schedule = smooth_weighted_schedule([5, 1, 1])
    assert schedule == [0, 0, 1, 0, 2, 0, 0]  # nginx's documented sequence: a a b a c a a
    assert Counter(smooth_weighted_schedule([2, 4, 6])) == {0: 1, 1: 2, 2: 3}  # gcd reduced


def test_weight_zero_gets_no_traffic_unless_all_are_zero() -> None:
    helper = setup({1: 0, 2: 1, 3: 3})
    assert Counter(helper.pick_port() for _ in range(400)) == {2: 100, 3: 300}
    helper = setup({1: 0, 2: 0})
    assert Counter(helper.pick_port() for _ in range(100)) == {1: 50, 2: 50}


def test_missing_or_bad_weight_counts_as_one() -> None:
    helper = FakeHelper()
    balancer = WeightedRoundRobinBalancer(helper, rng=random.Random(0))
    helper.balancer = balancer
    balancer.update_endpoints([endpoint(1), endpoint(2, weight="x"), endpoint(3, weight=2)])
    helper.make_ready()
    assert Counter(helper.pick_port() for _ in range(400)) == {1: 100, 2: 100, 3: 200}


def test_weight_change_from_the_resolver_applies_to_the_kept_subchannel() -> None:
    helper = setup({1: 1, 2: 1})
    assert helper.balancer is not None
    two = helper.subchannel(2)
    helper.balancer.update_endpoints([endpoint(1, weight=1), endpoint(2, weight=3)])
    assert helper.subchannel(2) is two
    assert Counter(helper.pick_port() for _ in range(400)) == {1: 100, 2: 300}


def test_long_periods_use_the_stride_schedule_with_exact_counts() -> None:
    weights = [97, 89, 83, 79, 73, 71, 67, 61, 59, 53] * 30  # 300 endpoints, period 21,600
    schedule = smooth_weighted_schedule(weights)
    assert Counter(schedule) == dict(enumerate(weights))


def test_periods_beyond_max_schedule_are_scaled() -> None:
    schedule = smooth_weighted_schedule([1000, 3001], max_schedule=400)
    counts = Counter(schedule)
    assert len(schedule) <= 401
    assert counts[1] / len(schedule) == pytest.approx(0.75, abs=0.01)


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError):
        WeightedRoundRobinConfig(max_schedule=0)

from __future__ import annotations

import random
from collections import Counter

import pytest

from rpcfw.balancer.base import ConnectivityState
from rpcfw.balancer.ring_hash import RingHashBalancer, RingHashConfig, build_ring, hash_key

from .fakes import FakeHelper, endpoint, endpoints

KEYS = [f"user-{i}".encode() for i in range(10_000)]


def setup(*ports: int, **config: int) -> tuple[FakeHelper, RingHashBalancer]:
    helper = FakeHelper()
    balancer = RingHashBalancer(helper, rng=random.Random(0), config=RingHashConfig(**config))
    helper.balancer = balancer
    balancer.update_endpoints(endpoints(*ports))
    helper.make_ready()
    return helper, balancer


def assignment(helper: FakeHelper) -> dict[bytes, int]:
    return {key: helper.pick_port(key) for key in KEYS}


def test_same_key_same_subchannel() -> None:
    helper, _ = setup(1, 2, 3, 4)
    for key in KEYS[:200]:
        assert len({helper.pick_port(key) for _ in range(3)}) == 1


def test_the_hash_is_stable_across_processes() -> None:
    # a fixed value: blake2b-64 of the key, not Python's salted hash()
    assert hash_key(b"user-1") == int.from_bytes(
        __import__("hashlib").blake2b(b"user-1", digest_size=8).digest(), "big"
    )
    hashes_a, owners_a = build_ring(endpoints(1, 2), RingHashConfig())
    hashes_b, owners_b = build_ring(endpoints(2, 1), RingHashConfig())
    assert hashes_a == hashes_b
    assert [1 + o for o in owners_a] == [2 - o for o in owners_b]


def test_keys_spread_over_all_endpoints() -> None:
    helper, _ = setup(1, 2, 3, 4, 5)
    counts = Counter(assignment(helper).values())
    assert set(counts) == {1, 2, 3, 4, 5}
    assert all(1_000 < c < 3_000 for c in counts.values())  # ideal 2,000


def test_a_join_moves_about_one_in_n_plus_one_keys_all_to_the_newcomer() -> None:
    helper, balancer = setup(1, 2, 3, 4, 5)
    before = assignment(helper)
    balancer.update_endpoints(endpoints(1, 2, 3, 4, 5, 6))
    helper.make_ready([6])
    after = assignment(helper)
    moved = [key for key in KEYS if before[key] != after[key]]
    ideal = len(KEYS) / 6
    assert 0.5 * ideal <= len(moved) <= 1.6 * ideal
    assert {after[key] for key in moved} == {6}


def test_a_leave_moves_only_the_leavers_keys() -> None:
    helper, balancer = setup(1, 2, 3, 4, 5, 6)
    before = assignment(helper)
    helper.set_state(helper.subchannel(4), ConnectivityState.IDLE)  # not READY: off the ring
    after = assignment(helper)
    moved = {key for key in KEYS if before[key] != after[key]}
    assert moved == {key for key in KEYS if before[key] == 4}
    assert 4 not in after.values()
    balancer.update_endpoints(endpoints(1, 2, 3, 5, 6))  # gone from the resolver too
    assert assignment(helper) == after


def test_weights_scale_the_share_of_keys() -> None:
    helper = FakeHelper()
    balancer = RingHashBalancer(helper, rng=random.Random(0))
    helper.balancer = balancer
    balancer.update_endpoints([endpoint(1), endpoint(2, weight=3)])
    helper.make_ready()
    counts = Counter(assignment(helper).values())
    assert counts[2] / len(KEYS) == pytest.approx(0.75, abs=0.06)


def test_without_a_key_a_random_point_is_used() -> None:
    helper, _ = setup(1, 2, 3)
    counts = Counter(helper.pick_port(None) for _ in range(3_000))
    assert set(counts) == {1, 2, 3}


def test_virtual_nodes_are_configurable_and_the_ring_is_capped() -> None:
    hashes, owners = build_ring(endpoints(1, 2), RingHashConfig(virtual_nodes=10))
    assert len(hashes) == 20 and Counter(owners) == {0: 10, 1: 10}
    assert hashes == sorted(hashes)
    hashes, _ = build_ring(endpoints(1, 2), RingHashConfig(virtual_nodes=100, max_ring_size=50))
    assert len(hashes) <= 50


def test_none_ready_returns_none() -> None:
    helper = FakeHelper()
    balancer = RingHashBalancer(helper)
    helper.balancer = balancer
    balancer.update_endpoints(endpoints(1))
    assert helper.pick(b"k") is None


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError):
        RingHashConfig(virtual_nodes=0)

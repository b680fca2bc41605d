from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from rpcfw.balancer import policies
from rpcfw.balancer.base import Balancer, BalancerHelper
from rpcfw.balancer.p2c import P2CBalancer
from rpcfw.balancer.pick_first import PickFirstBalancer
from rpcfw.balancer.policies import balancer_factory, balancer_names, register_balancer
from rpcfw.balancer.ring_hash import RingHashBalancer, RingHashConfig
from rpcfw.balancer.round_robin import RoundRobinBalancer
from rpcfw.balancer.weighted_round_robin import WeightedRoundRobinBalancer

from .fakes import FakeHelper

BUILT_INS: dict[str, type[Balancer]] = {
    "pick_first": PickFirstBalancer,
    "round_robin": RoundRobinBalancer,
    "weighted_round_robin": WeightedRoundRobinBalancer,
    "p2c": P2CBalancer,
    "ring_hash": RingHashBalancer,
}


@pytest.fixture(autouse=True)
def restore_registry() -> Iterator[None]:
    saved = dict(policies._FACTORIES)
    yield
    policies._FACTORIES.clear()
    policies._FACTORIES.update(saved)


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_built_ins_are_present_and_build(name: str) -> None:
    balancer = balancer_factory(name)(FakeHelper())
    assert isinstance(balancer, BUILT_INS[name])
    assert name in balancer_names()


def test_custom_registration_works() -> None:
    def factory(helper: BalancerHelper) -> RingHashBalancer:
        return RingHashBalancer(helper, config=RingHashConfig(virtual_nodes=7))

    register_balancer("my_ring", factory)
    balancer = balancer_factory("my_ring")(FakeHelper())
    assert isinstance(balancer, RingHashBalancer)
    assert balancer.config.virtual_nodes == 7

    register_balancer("fast_p2c", functools.partial(P2CBalancer, outlier=None))
    assert isinstance(balancer_factory("fast_p2c")(FakeHelper()), P2CBalancer)


def test_duplicate_names_need_replace() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_balancer("round_robin", PickFirstBalancer)
    register_balancer("round_robin", PickFirstBalancer, replace=True)
    assert balancer_factory("round_robin") is PickFirstBalancer


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as info:
        balancer_factory("least_conn")
    message = str(info.value)
    assert "least_conn" in message
    for name in BUILT_INS:
        assert name in message

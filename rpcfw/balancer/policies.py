"""The table of balancing policies by name -> factories ``factory(helper) -> Balancer``.

Built-ins: ``pick_first``, ``round_robin``, ``weighted_round_robin``, ``p2c``, ``ring_hash``.
Configure one with :func:`functools.partial`, e.g.
``register_balancer("ring_hash_big", partial(RingHashBalancer, config=RingHashConfig(400)))``.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import Balancer, BalancerHelper
from .p2c import P2CBalancer
from .pick_first import PickFirstBalancer
from .ring_hash import RingHashBalancer
from .round_robin import RoundRobinBalancer
from .weighted_round_robin import WeightedRoundRobinBalancer

__all__ = ["BalancerFactory", "balancer_factory", "balancer_names", "register_balancer"]

BalancerFactory = Callable[[BalancerHelper], Balancer]

_FACTORIES: dict[str, BalancerFactory] = {
    "pick_first": PickFirstBalancer,
    "round_robin": RoundRobinBalancer,
    "weighted_round_robin": WeightedRoundRobinBalancer,
    "p2c": P2CBalancer,
    "ring_hash": RingHashBalancer,
}


def register_balancer(name: str, factory: BalancerFactory, *, replace: bool = False) -> None:
    """Make ``factory`` available under ``name``; an existing name needs ``replace=True``."""
    if not name:
        raise ValueError("a balancer name must not be empty")
    if name in _FACTORIES and not replace:
        raise ValueError(f"balancer {name!r} is already registered (pass replace=True)")
    _FACTORIES[name] = factory


def balancer_factory(name: str) -> BalancerFactory:
    """The factory registered under ``name``; ValueError naming the known ones otherwise."""
    try:
        return _FACTORIES[name]
    except KeyError:
        known = ", ".join(sorted(_FACTORIES))
        raise ValueError(f"unknown balancer {name!r}; known: {known}") from None


def balancer_names() -> tuple[str, ...]:
    """The names of the registered balancing policies, sorted."""
    return tuple(sorted(_FACTORIES))

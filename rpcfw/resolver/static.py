"""``host:port`` and ``static:///h1:p1,h2:p2``: a fixed endpoint list, pushed once."""

from __future__ import annotations

from .base import Resolver, ResolverListener
from .target import Target, parse_address_list

__all__ = ["StaticResolver"]


class StaticResolver(Resolver):
    """Resolver for ``host:port`` and ``static:///h1:p1,h2:p2``: the fixed list of addresses,
    reported once."""

    def __init__(self, target: Target, listener: ResolverListener) -> None:
        super().__init__(target, listener)
        try:
            self.endpoints = parse_address_list(target.endpoint)
        except ValueError as exc:
            raise ValueError(f"invalid target {target.raw!r}: {exc}") from None

    def start(self) -> None:
        self.listener(self.endpoints)

    @property
    def authority(self) -> str:
        return str(self.endpoints[0])

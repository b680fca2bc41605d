"""A resolver tests drive by hand: ``manual://<name>`` targets get whatever ``publish`` sets."""

from __future__ import annotations

from collections.abc import Sequence

from rpcfw.endpoint import Endpoint
from rpcfw.resolver import Resolver, ResolverListener, Target, register_resolver

__all__ = ["ManualResolver", "publish"]

_live: dict[str, list[ManualResolver]] = {}
_current: dict[str, Sequence[Endpoint] | Exception] = {}


class ManualResolver(Resolver):
    def __init__(self, target: Target, listener: ResolverListener) -> None:
        super().__init__(target, listener)
        self.name = target.authority

    def start(self) -> None:
        _live.setdefault(self.name, []).append(self)
        if self.name in _current:
            self.listener(_current[self.name])

    async def close(self) -> None:
        _live.get(self.name, []).remove(self)

    @property
    def authority(self) -> str:
        return self.name


def publish(name: str, update: Sequence[Endpoint] | Exception) -> None:
    """Push a new endpoint set (or a resolver error) to every channel on ``manual://name``."""
    _current[name] = update
    for resolver in list(_live.get(name, [])):
        resolver.listener(update)


register_resolver("manual", ManualResolver)

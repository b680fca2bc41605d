"""Resolver contract: turns a target into endpoint sets, pushed to a listener over time, and
optionally a service config, pushed to ``config_listener`` (set by the channel before
``start``; resolvers that never call ``publish_service_config`` keep working unchanged)."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence

from .._runtime import AsyncioRuntime, ChannelRuntime, TaskHandle
from ..endpoint import Endpoint
from ..policy.service_config import ServiceConfig
from .target import Target

__all__ = ["Resolver", "ResolverFactory", "ResolverListener", "ServiceConfigListener"]

#: Called with a full new endpoint set, or with an error (the channel keeps what it had).
ResolverListener = Callable[[Sequence[Endpoint] | Exception], None]

#: Called with the service config the resolver found for its target, or None when it has none
#: (the channel then uses its own ``service_config``).
ServiceConfigListener = Callable[[ServiceConfig | None], None]


class Resolver(abc.ABC):
    """One per channel. ``start`` may spawn background work (with ``spawn``, so that it runs
    on the channel's backend, trio included); ``close`` must end all of it."""

    #: the channel's runtime, set before ``start`` (asyncio when used on its own)
    runtime: ChannelRuntime | None = None
    #: where service configs go (set by the channel before ``start``; None: nobody wants them,
    #: a resolver may then skip looking them up)
    config_listener: ServiceConfigListener | None = None

    def __init__(self, target: Target, listener: ResolverListener) -> None:
        self.target = target
        self.listener = listener

    @abc.abstractmethod
    def start(self) -> None:
        """Begin resolving (called inside the running event loop)."""

    def spawn(self, fn: Callable[[], Awaitable[None]], what: str) -> TaskHandle:
        """Run ``fn`` as a background task on the channel's backend; its failure is logged as
        ``what``. Cancel the handle and wait for it in ``close``."""
        if self.runtime is None:
            self.runtime = AsyncioRuntime()
        return self.runtime.spawn(fn, what)

    def publish_service_config(self, config: ServiceConfig | None) -> None:
        """Hand a (validated) service config to the channel; None: the target has none."""
        if self.config_listener is not None:
            self.config_listener(config)

    def resolve_now(self) -> None:  # noqa: B027 (optional hook)
        """A hint that endpoints may have changed (e.g. a connection was lost)."""

    async def close(self) -> None:  # noqa: B027 (optional hook)
        """Stop resolving."""

    @property
    def authority(self) -> str:
        """The :authority for calls on this target."""
        return self.target.endpoint or self.target.authority


ResolverFactory = Callable[[Target, ResolverListener], Resolver]

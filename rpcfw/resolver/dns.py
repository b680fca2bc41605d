"""``dns:///host:port``: every address the name resolves to, re-resolved periodically and
soon after a connection is lost (rate-limited). A failed lookup keeps the last good set."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from .._tasks import cancel_and_wait
from ..balancer.base import Endpoint
from .base import Resolver, ResolverListener
from .target import Target, parse_address

__all__ = ["DnsResolver"]

log = logging.getLogger("rpcfw.resolver")


class DnsResolver(Resolver):
    def __init__(
        self,
        target: Target,
        listener: ResolverListener,
        *,
        refresh_interval: float = 30.0,
        min_interval: float = 1.0,
    ) -> None:
        super().__init__(target, listener)
        self.address = parse_address(target.endpoint)
        self.refresh_interval = refresh_interval
        self.min_interval = min_interval
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._last: list[Endpoint] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def resolve_now(self) -> None:
        self._wake.set()

    async def _lookup(self) -> list[Endpoint]:
        infos = await asyncio.get_running_loop().getaddrinfo(
            self.address.host, self.address.port, type=socket.SOCK_STREAM
        )
        seen: dict[tuple[str, int], Endpoint] = {}
        for _family, _type, _proto, _name, sockaddr in infos:
            endpoint = Endpoint(str(sockaddr[0]), int(sockaddr[1]))
            seen.setdefault(endpoint.key, endpoint)
        return sorted(seen.values(), key=lambda e: e.key)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                endpoints = await self._lookup()
            except OSError as exc:
                log.warning(
                    "dns lookup of %s failed: %s (keeping %s)", self.address.host, exc, self._last
                )
                self.listener(exc)
            else:
                if endpoints != self._last:
                    self._last = endpoints
                    self.listener(endpoints)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.refresh_interval):
                    await self._wake.wait()
            await asyncio.sleep(max(0.0, self.min_interval - (loop.time() - started)))

    async def close(self) -> None:
        task = self._task
        if task is not None:
            await cancel_and_wait(task, log, f"dns resolver of {self.address.host}")
            self._task = None

    @property
    def authority(self) -> str:
        return self.target.endpoint

"""``dns:///host:port``: every address the name resolves to, re-resolved periodically and
soon after a connection is lost (rate-limited). A failed lookup keeps the last good set."""

from __future__ import annotations

import logging
import socket

import anyio

from .._runtime import EventLike, TaskHandle
from ..endpoint import Endpoint
from .base import Resolver, ResolverListener
from .target import Target, parse_address

__all__ = ["DnsResolver"]

log = logging.getLogger("rpcfw.resolver")


class DnsResolver(Resolver):
    """Resolver for ``dns:///host:port``: every address the name resolves to, re-resolved every
    ``refresh_interval`` seconds and on ``resolve_now()`` (at most once per ``min_interval``); a
    failed lookup keeps the last good set."""

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
        self._task: TaskHandle | None = None
        self._wake: EventLike | None = None
        self._last: list[Endpoint] | None = None

    def start(self) -> None:
        self._task = self.spawn(self._run, f"dns resolver of {self.address.host}")

    def resolve_now(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _lookup(self) -> list[Endpoint]:
        infos = await anyio.getaddrinfo(
            self.address.host, self.address.port, type=socket.SOCK_STREAM
        )
        seen: dict[tuple[str, int], Endpoint] = {}
        name = {"server_name": self.address.host}  # what TLS checks: the name, not the IP
        for _family, _type, _proto, _name, sockaddr in infos:
            endpoint = Endpoint(str(sockaddr[0]), int(sockaddr[1]), name)
            seen.setdefault(endpoint.key, endpoint)
        return sorted(seen.values(), key=lambda e: e.key)

    async def _run(self) -> None:
        while True:
            started = anyio.current_time()
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
            self._wake = anyio.Event()  # a hint from before this lookup is answered by it
            with anyio.move_on_after(self.refresh_interval):
                await self._wake.wait()
            await anyio.sleep(max(0.0, self.min_interval - (anyio.current_time() - started)))

    async def close(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            await task.wait()  # a cancellation of ours still propagates
            self._task = None

    @property
    def authority(self) -> str:
        return self.target.endpoint

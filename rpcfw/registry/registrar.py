"""LeaseRegistrar: announces instances under a lease kept alive by one long-lived stream.

If the lease is lost (etcd restarted without data, keepalive failing past the TTL) it
re-registers on its own, with backoff. ``deregister`` revokes the lease, which deletes every
key at once, so watchers see the instances leave before the server starts draining.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from .._tasks import cancel_and_wait
from ..etcd.api import EtcdClient, EtcdError, LeaseLost
from ..policy.backoff import Backoff, BackoffConfig
from .base import Registrar
from .instance import DEFAULT_PREFIX, Instance, instance_key

__all__ = ["LeaseRegistrar"]

log = logging.getLogger("rpcfw.registry")


class LeaseRegistrar(Registrar):
    def __init__(
        self,
        client: EtcdClient,
        *,
        prefix: str = DEFAULT_PREFIX,
        ttl: int = 10,
        backoff: BackoffConfig | None = None,
        own_client: bool = False,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl
        self._backoff = backoff or BackoffConfig(initial=0.5, max_delay=10.0)
        self._own_client = own_client
        self._instances: list[Instance] = []
        self.lease: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.registered = asyncio.Event()

    async def _announce(self) -> None:
        lease = await self.client.grant_lease(self.ttl)
        for instance in self._instances:
            await self.client.put(
                instance_key(self.prefix, instance), instance.to_json(), lease=lease
            )
        self.lease = lease
        self.registered.set()
        log.info("registered %s under lease %x", [i.service for i in self._instances], lease)

    async def register(self, instances: Sequence[Instance]) -> None:
        """Announce now if the registry answers; otherwise keep trying in the background
        (a server must not refuse to start because the registry is down)."""
        self._instances = list(instances)
        try:
            await asyncio.wait_for(self._announce(), timeout=max(self.ttl / 2, 1.0))
        except (EtcdError, TimeoutError) as exc:
            log.warning("registry unavailable at start (%s); retrying in the background", exc)
        self._task = asyncio.get_running_loop().create_task(self._keep())

    async def _keep(self) -> None:
        backoff = Backoff(self._backoff)
        while True:
            try:
                if self.lease is None:
                    await self._announce()
                assert self.lease is not None
                async for _ttl in self.client.keep_alive(self.lease, self.ttl):
                    backoff.reset()
                raise LeaseLost("keepalive stream ended")
            except LeaseLost as exc:
                log.warning("lease lost (%s): registering again", exc)
                self.lease = None
                self.registered.clear()
            except EtcdError as exc:
                log.warning("registry keepalive failed (%s); retrying", exc)
            await asyncio.sleep(backoff.next_delay())

    async def deregister(self) -> None:
        task = self._task
        if task is not None:
            await cancel_and_wait(task, log, "registry keepalive")
            self._task = None
        lease, self.lease = self.lease, None
        self.registered.clear()
        if lease is not None:
            try:
                await asyncio.wait_for(self.client.revoke_lease(lease), timeout=2.0)
            except (EtcdError, TimeoutError) as exc:
                log.warning(
                    "could not revoke lease %x (%s); it expires in %ss", lease, exc, self.ttl
                )
        if self._own_client:
            await self.client.close()

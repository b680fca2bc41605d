"""LeaseRegistrar: announces instances under a lease kept alive by one long-lived stream.

If the lease is lost (etcd restarted without data, keepalive failing past the TTL) it
re-registers on its own, at once. ``deregister`` revokes the lease, which deletes every
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
from .state_log import StateLog

__all__ = ["LeaseRegistrar"]

log = logging.getLogger("rpcfw.registry")


class LeaseRegistrar(Registrar):
    """Keeps ``instances`` announced under one lease.

    - A lost lease (etcd says it is gone: expired, revoked, data wiped) is replaced at once:
      a new lease and every key again, with no backoff delay. Only failing calls back off.
    - While etcd does not answer, keepalives (or the registration) are retried at least every
      third of the TTL, so the lease is refreshed as soon as etcd answers again, before it can
      expire, and a server that could not register yet is there soon after.
    - State changes (registered, registry unreachable, lease lost) are logged once each, not
      once per retry; ``stats`` counts them (``registered``, ``unreachable``, ``lease_lost``)
      and every failed attempt (``failed_attempts``).
    """

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
        self._state = StateLog(log, "unregistered")

    @property
    def history(self) -> list[str]:
        """The last state changes and failed attempts, oldest first."""
        return list(self._state.history)

    @property
    def stats(self) -> dict[str, int]:
        """How often each state was entered, and failed attempts."""
        return dict(self._state.entered)

    @property
    def state(self) -> str:
        """``unregistered``, ``registered``, ``unreachable`` or ``lease_lost``."""
        return self._state.state

    async def _announce(self) -> None:
        lease = await self.client.grant_lease(self.ttl)
        for instance in self._instances:
            await self.client.put(
                instance_key(self.prefix, instance), instance.to_json(), lease=lease
            )
        self.lease = lease
        self.registered.set()
        self._state.enter(
            "registered",
            "registered %s under lease %x",
            [i.service for i in self._instances],
            lease,
            level=logging.INFO,
        )

    async def register(self, instances: Sequence[Instance]) -> None:
        """Announce now if the registry answers; otherwise keep trying in the background
        (a server must not refuse to start because the registry is down)."""
        self._instances = list(instances)
        try:
            await asyncio.wait_for(self._announce(), timeout=max(self.ttl / 2, 1.0))
        except (EtcdError, TimeoutError) as exc:
            self._state.count("failed_attempts")
            self._state.enter(
                "unreachable",
                "registry unavailable at start (%s); retrying in the background",
                exc,
            )
        self._task = asyncio.get_running_loop().create_task(self._keep())

    def _retry_delay(self, backoff: Backoff) -> float:
        """Backoff, but never longer than a third of the TTL: while a lease may still live,
        the first answer after an outage must come before it expires; without one, a server
        is back in the registry soon after etcd is (one small request per retry)."""
        return min(backoff.next_delay(), self.ttl / 3)

    async def _keep(self) -> None:
        backoff = Backoff(self._backoff)
        lost_in_a_row = 0
        while True:
            try:
                if self.lease is None:
                    await self._announce()
                    backoff.reset()
                assert self.lease is not None
                async for _ttl in self.client.keep_alive(self.lease, self.ttl):
                    backoff.reset()
                    lost_in_a_row = 0
                    self._state.enter(
                        "registered",
                        "registry answers again: lease %x kept",
                        self.lease,
                        level=logging.INFO,
                    )
                raise LeaseLost("keepalive stream ended")
            except LeaseLost as exc:
                self._state.enter("lease_lost", "lease lost (%s): registering again now", exc)
                self.lease = None
                self.registered.clear()
                lost_in_a_row += 1
                if lost_in_a_row == 1:
                    continue  # at once: etcd answered, it just no longer has our lease
                self._state.count("failed_attempts")  # lost again at once: back off
            except EtcdError as exc:
                self._state.count("failed_attempts")
                self._state.enter(
                    "unreachable",
                    "registry unreachable (%s); retrying (logged once until it answers)",
                    exc,
                )
            await asyncio.sleep(self._retry_delay(backoff))

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
        self._state.enter("unregistered", "deregistered", level=logging.INFO)
        if self._own_client:
            await self.client.close()

"""RegistryResolver: ``etcd://host:port[,host:port...]/service`` and ``local:///service``.

Reads a consistent snapshot of the service's prefix, then watches from its revision + 1.
A broken watch resumes from the last seen revision + 1 after a backoff, so no event is missed;
a compacted revision triggers a fresh snapshot, and so does a revision that went backwards
(etcd restarted without its data). Registry errors never empty the endpoint set:
the channel keeps calling the last known endpoints (and the log says so). Bursts of changes
within ``coalesce`` seconds reach the balancer as one update.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .._runtime import TaskHandle
from ..balancer.base import Cancellable
from ..etcd.api import EtcdClient, EtcdError, WatchCompacted
from ..policy.backoff import Backoff, BackoffConfig
from ..registry.instance import DEFAULT_PREFIX, service_prefix
from ..registry.tracker import InstanceTracker
from .base import Resolver, ResolverListener
from .target import Target

__all__ = ["RegistryResolver"]

log = logging.getLogger("rpcfw.resolver")


class RegistryResolver(Resolver):
    def __init__(
        self,
        target: Target,
        listener: ResolverListener,
        client: EtcdClient,
        *,
        prefix: str = DEFAULT_PREFIX,
        coalesce: float = 0.01,
        backoff: BackoffConfig | None = None,
        close_client: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(target, listener)
        self.service = target.endpoint.strip("/")
        if not self.service:
            raise ValueError(
                f"{target.raw!r} names no service (expected {target.scheme}://.../service)"
            )
        self.client = client
        self.prefix = prefix
        self.coalesce = coalesce
        self._backoff = backoff or BackoffConfig(initial=0.2, max_delay=5.0)
        self._close_client = close_client
        self.tracker = InstanceTracker(prefix)
        self._task: TaskHandle | None = None
        self._push: Cancellable | None = None

    @property
    def authority(self) -> str:
        return self.service

    def start(self) -> None:
        if self.runtime is not None and self.runtime.anyio:
            raise RuntimeError(
                f"{self.target.scheme}:// targets run on asyncio only (the registry clients "
                "are asyncio code); use a static or dns target on trio"
            )
        self._task = self.spawn(self._run, f"registry resolver of {self.service}")

    def _publish(self) -> None:
        self._push = None
        self.listener(self.tracker.endpoints())

    def _schedule_publish(self) -> None:
        if self._push is None:
            assert self.runtime is not None
            self._push = self.runtime.call_later(self.coalesce, self._publish)

    async def _run(self) -> None:
        keys = service_prefix(self.prefix, self.service)
        backoff = Backoff(self._backoff)
        snapshot_needed = True
        after_error = False
        while True:
            try:
                if after_error and not snapshot_needed:
                    # resume from revision + 1, unless the store lost its history
                    current = await self.client.get_prefix(keys)
                    if current.revision < self.tracker.revision:
                        log.warning(
                            "registry revision went back (%d < %d): data lost; resyncing",
                            current.revision,
                            self.tracker.revision,
                        )
                        self.tracker.reset(current.revision, current.items)
                        self._publish()
                    after_error = False
                if snapshot_needed:
                    snapshot = await self.client.get_prefix(keys)
                    self.tracker.reset(snapshot.revision, snapshot.items)
                    snapshot_needed = False
                    after_error = False
                    self._publish()
                    backoff.reset()
                async for batch in self.client.watch_prefix(keys, self.tracker.revision + 1):
                    if self.tracker.apply(batch):
                        self._schedule_publish()
                    backoff.reset()
                raise EtcdError("watch stream ended")
            except WatchCompacted as exc:
                log.warning("watch of %s: %s; reading a fresh snapshot", keys, exc)
                snapshot_needed = True
            except EtcdError as exc:
                log.warning(
                    "registry unreachable for %s (%s); keeping %d known endpoints",
                    self.service,
                    exc,
                    len(self.tracker.instances),
                )
                self.listener(exc)
                after_error = True
            await asyncio.sleep(backoff.next_delay())

    async def close(self) -> None:
        if self._push is not None:
            self._push.cancel()
        task = self._task
        if task is not None:
            task.cancel()
            await task.wait()  # a cancellation of ours still propagates
            self._task = None
        if self._close_client is not None:
            result = self._close_client()
            if asyncio.iscoroutine(result):
                await result

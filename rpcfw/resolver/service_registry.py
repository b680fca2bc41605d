"""ServiceRegistryResolver: ``etcd://host:port[,host:port...]/service`` and ``local:///service``.

Reads a consistent snapshot of the service's prefix, then watches from its revision + 1.

- A broken watch resumes from the last seen revision + 1 after a backoff, so no event is
  missed. A hung etcd is detected by the client (an idle watch whose endpoint stops answering
  a probe) and reported as unreachable like any other outage.
- A compacted revision triggers a fresh snapshot, and so does a revision that went backwards
  (etcd restarted without its data).
- After a resync or a watch resumed from an outage, the published set settles
  (``SettlingView``): endpoints known before stay for ``settle`` seconds, merged with what
  arrives, and a resync never replaces a non-empty set by an empty one.
- Registry errors never empty the endpoint set: the channel keeps calling the last known
  endpoints. Any other failure of the watch loop is logged with its traceback and the loop
  starts again after a backoff (it never ends silently).
- State changes (watching, unreachable, resync, compacted, failed) are logged once each and
  counted in ``stats``.

Bursts of changes within ``coalesce`` seconds reach the balancer as one update.

Service config: when the channel listens for one (``config_listener``), the key
``<config_prefix>/<service>`` (default ``/rpcfw/config/<service>``) is read and watched too, by a
second loop: its value (gRFC A6 JSON) is validated and handed to the channel; a deleted key
hands over None. An invalid value is logged once (per value) and counted
(``stats["config_invalid"]``); the channel keeps the config it had. After any watch failure
the loop reads the key again and watches from that read's revision + 1, so no change is
missed. The first endpoint snapshot waits (up to 2 s) for the first read of the key, so the
first calls already see the config.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from .._clock import Cancellable
from .._runtime import TaskHandle
from ..endpoint import Endpoint
from ..etcd.api import EtcdClient, EtcdError, WatchCompacted, WatchEventType
from ..policy.backoff import Backoff, BackoffConfig
from ..policy.service_config import ServiceConfig
from ..registry.instance import DEFAULT_CONFIG_PREFIX, DEFAULT_PREFIX, config_key, service_prefix
from ..registry.settling import SettlingView
from ..registry.state_log import StateLog
from ..registry.tracker import InstanceTracker
from .base import Resolver, ResolverListener
from .target import Target

__all__ = ["ServiceRegistryResolver"]

log = logging.getLogger("rpcfw.resolver")

#: how long the first endpoint snapshot waits for the first read of the service config
_FIRST_CONFIG_WAIT = 2.0


class ServiceRegistryResolver(Resolver):
    """Resolver for ``etcd://host:port[,...]/service`` and ``local:///service``: a snapshot of the
    service's instances, then a watch from its revision + 1, with resume, resync and settling
    (see the module docstring)."""

    def __init__(
        self,
        target: Target,
        listener: ResolverListener,
        client: EtcdClient,
        *,
        prefix: str = DEFAULT_PREFIX,
        coalesce: float = 0.01,
        settle: float = 5.0,
        backoff: BackoffConfig | None = None,
        close_client: Callable[[], object] | None = None,
        config_prefix: str = DEFAULT_CONFIG_PREFIX,
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
        self.settling = SettlingView(settle)
        self.published: list[Endpoint] | None = None  # what the channel was last told
        self._task: TaskHandle | None = None
        self._push: Cancellable | None = None
        self._settle_timer: Cancellable | None = None
        self._state = StateLog(log, "starting")
        self.config_key = config_key(self.service, config_prefix)
        #: the service config last handed to the channel (None: none in the registry)
        self.service_config: ServiceConfig | None = None
        self._config_raw: bytes | None = None  # the key's value last seen, valid or not
        self._config_task: TaskHandle | None = None
        self._config_read: asyncio.Event | None = None  # set after the first read (or failure)

    @property
    def authority(self) -> str:
        return self.service

    @property
    def state(self) -> str:
        """``starting``, ``watching``, ``unreachable``, ``resync``, ``compacted`` or
        ``failed``."""
        return self._state.state

    @property
    def history(self) -> list[str]:
        """The last state changes and failed attempts, oldest first."""
        return list(self._state.history)

    @property
    def stats(self) -> dict[str, int]:
        """How often each state was entered (``unreachable``, ``resync``, ...)."""
        return dict(self._state.entered)

    def start(self) -> None:
        if self.runtime is not None and self.runtime.anyio:
            raise RuntimeError(
                f"{self.target.scheme}:// targets run on asyncio only (the registry clients "
                "are asyncio code); use a static or dns target on trio"
            )
        if self.config_listener is not None:
            self._config_read = asyncio.Event()
            self._config_task = self.spawn(
                self._run_config, f"service config watch of {self.service}"
            )
        self._task = self.spawn(self._run, f"registry resolver of {self.service}")

    # -- publishing ------------------------------------------------------------------------
    def _now(self) -> float:
        assert self.runtime is not None
        return self.runtime.now()

    def _publish(self, force: bool = False) -> None:
        """Tell the channel the current view (only if it changed, unless ``force``: after a
        snapshot, so that a resolver error it was told before is cleared)."""
        self._push = None
        now = self._now()
        endpoints = self.settling.view(now, self.tracker.endpoints())
        if force or endpoints != self.published:
            self.published = endpoints
            self.listener(endpoints)
        self._schedule_settled(now)

    def _schedule_settled(self, now: float) -> None:
        """Publish again when the settling window ends."""
        until = self.settling.settling_until
        if until is not None and self._settle_timer is None:
            assert self.runtime is not None

            def settled() -> None:
                self._settle_timer = None
                self._publish()
                if self.settling.holding and self.settling.settling_until is None:
                    log.warning(
                        "registry lists no instance of %s after a resync; keeping the %d "
                        "known endpoints until one registers",
                        self.service,
                        len(self.published or ()),
                    )

            self._settle_timer = self.runtime.call_later(max(0.0, until - now), settled)

    def _schedule_publish(self) -> None:
        if self._push is None:
            assert self.runtime is not None
            self._push = self.runtime.call_later(self.coalesce, self._publish)

    def _resynced(self) -> None:
        """A fresh snapshot replaced what we knew (or the watch resumed after an outage)."""
        if self.published:
            self.settling.resynced(self._now(), self.published)

    # -- the service config ----------------------------------------------------------------
    def _apply_config(self, raw: bytes | None) -> None:
        """The config key now holds ``raw`` (None: absent): validate it and tell the channel
        if the config changed; an invalid value is logged once and changes nothing."""
        if raw == self._config_raw:
            return
        self._config_raw = raw
        config: ServiceConfig | None = None
        if raw is not None:
            try:
                config = ServiceConfig.from_json(raw)
            except Exception as exc:  # ValueError, or a malformed structure (TypeError, ...)
                self._state.count("config_invalid")
                log.warning(
                    "invalid service config at %s (%s); keeping the previous one",
                    self.config_key,
                    exc,
                )
                return
        if config == self.service_config:
            return
        self.service_config = config
        self._state.count("config_updated")
        log.info(
            "service config of %s %s",
            self.service,
            "removed" if config is None else f"updated from {self.config_key}",
        )
        self.publish_service_config(config)

    async def _run_config(self) -> None:
        key = self.config_key
        backoff = Backoff(self._backoff)
        while True:
            try:
                snapshot = await self.client.get_prefix(key)
                self._apply_config(next((kv.value for kv in snapshot.items if kv.key == key), None))
                if self._config_read is not None:
                    self._config_read.set()
                async for batch in self.client.watch_prefix(key, snapshot.revision + 1):
                    for event in batch:
                        if event.key == key:
                            put = event.type is WatchEventType.PUT
                            self._apply_config(event.value if put else None)
                    backoff.reset()
                raise EtcdError("watch stream ended")
            except EtcdError:  # the endpoint loop logs outages; read the key again after it
                self._state.count("config_watch_failed")
            except Exception:
                self._state.count("config_watch_failed")
                log.exception("service config watch of %s failed; restarting it", self.service)
            if self._config_read is not None:
                self._config_read.set()  # never hold the endpoints back for the config
            await asyncio.sleep(backoff.next_delay())

    async def _first_config_read(self) -> None:
        if self._config_read is not None and not self._config_read.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_FIRST_CONFIG_WAIT):
                    await self._config_read.wait()

    # -- the watch loop --------------------------------------------------------------------
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
                        self._state.enter(
                            "resync",
                            "registry revision went back (%d < %d): data lost; resyncing %s",
                            current.revision,
                            self.tracker.revision,
                            self.service,
                        )
                        self._resynced()
                        self.tracker.reset(current.revision, current.items)
                    else:
                        self._resynced()  # leases that expired meanwhile go right now
                    self._publish(force=True)
                    after_error = False
                if snapshot_needed:
                    await self._first_config_read()
                    snapshot = await self.client.get_prefix(keys)
                    if self.published is not None:  # not the first snapshot: a resync
                        self._resynced()
                    self.tracker.reset(snapshot.revision, snapshot.items)
                    snapshot_needed = False
                    after_error = False
                    self._publish(force=True)
                self._state.enter(
                    "watching",
                    "watching %s from revision %d",
                    keys,
                    self.tracker.revision + 1,
                    level=logging.INFO,
                )
                async for batch in self.client.watch_prefix(keys, self.tracker.revision + 1):
                    if self.tracker.apply(batch):
                        self._schedule_publish()
                    backoff.reset()
                raise EtcdError("watch stream ended")
            except WatchCompacted as exc:
                self._state.enter(
                    "compacted", "watch of %s: %s; reading a fresh snapshot", keys, exc
                )
                snapshot_needed = True
            except EtcdError as exc:
                self._state.count("failed_attempts")
                if self._state.enter(
                    "unreachable",
                    "registry unreachable for %s (%s); keeping %d known endpoints "
                    "(logged once until it answers)",
                    self.service,
                    exc,
                    len(self.published or ()),
                ):
                    self.listener(exc)
                after_error = True
            except Exception:  # a bug or an unexpected answer: never end the watch silently
                self._state.count("failed_attempts")
                self._state.enter("failed", "watch of %s failed; restarting it", keys)
                log.exception("registry resolver of %s: watch loop failed", self.service)
                after_error = True
            await asyncio.sleep(backoff.next_delay())

    async def close(self) -> None:
        for timer in (self._push, self._settle_timer):
            if timer is not None:
                timer.cancel()
        for task in (self._task, self._config_task):
            if task is not None:
                task.cancel()
        for task in (self._task, self._config_task):
            if task is not None:
                await task.wait()  # a cancellation of ours still propagates
        self._task = self._config_task = None
        if self._close_client is not None:
            result = self._close_client()
            if asyncio.iscoroutine(result):
                await result

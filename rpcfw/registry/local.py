"""LocalStore: an in-process key-value store with etcd's semantics (revisions, leases with
TTLs, prefix watches with history), implementing the EtcdClient protocol.

It is the embedded default registry (``local:///service`` targets, no etcd needed) and a
faithful stand-in for etcd in unit tests of the registrar and resolver loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ..etcd.api import KeyValue, LeaseLost, Snapshot, WatchEvent, WatchEventType

__all__ = ["LocalStore", "default_store"]

_MIN_TTL = 2  # as etcd


@dataclass
class _Lease:
    ttl: int
    keys: set[str] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None


class LocalStore:
    """In-process key-value store with etcd's semantics (revisions, leases with TTLs, prefix watches
    with history): the embedded registry behind ``local:///`` targets, and an etcd stand-in for
    tests."""

    def __init__(self) -> None:
        self.revision = 1
        self._data: dict[str, KeyValue] = {}
        self._history: list[WatchEvent] = []
        self._leases: dict[int, _Lease] = {}
        self._next_lease = 1
        self._watchers: set[asyncio.Queue[WatchEvent]] = set()

    # -- writes ------------------------------------------------------------------------
    def _emit(self, event: WatchEvent) -> None:
        self._history.append(event)
        for queue in self._watchers:
            queue.put_nowait(event)

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Store ``value`` under ``key`` (bound to ``lease`` when not 0); returns the new revision.
        Raises LeaseLost for an unknown lease."""
        if lease and lease not in self._leases:
            raise LeaseLost(f"lease {lease} not found")
        self.revision += 1
        old = self._data.get(key)
        if old is not None and old.lease and old.lease in self._leases:
            self._leases[old.lease].keys.discard(key)
        self._data[key] = KeyValue(key, value, self.revision, lease)
        if lease:
            self._leases[lease].keys.add(key)
        self._emit(WatchEvent(WatchEventType.PUT, key, value, self.revision))
        return self.revision

    async def delete(self, key: str) -> None:
        """Remove ``key`` (nothing happens if it is absent)."""
        self._delete(key)

    def _delete(self, key: str) -> None:
        if self._data.pop(key, None) is not None:
            self.revision += 1
            self._emit(WatchEvent(WatchEventType.DELETE, key, b"", self.revision))

    # -- leases ------------------------------------------------------------------------
    async def grant_lease(self, ttl: int) -> int:
        """A new lease that expires ``ttl`` seconds (at least etcd's minimum) after its last
        refresh; returns its id."""
        lease_id = self._next_lease
        self._next_lease += 1
        self._leases[lease_id] = _Lease(max(ttl, _MIN_TTL))
        self._arm(lease_id)
        return lease_id

    def _arm(self, lease_id: int) -> None:
        lease = self._leases[lease_id]
        if lease.timer is not None:
            lease.timer.cancel()
        loop = asyncio.get_running_loop()
        lease.timer = loop.call_later(lease.ttl, self._expire, lease_id)

    def _expire(self, lease_id: int) -> None:
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            return
        if lease.timer is not None:
            lease.timer.cancel()
        for key in sorted(lease.keys):
            self._delete(key)

    async def revoke_lease(self, lease: int) -> None:
        """End ``lease`` now and delete every key bound to it."""
        self._expire(lease)

    async def keep_alive(self, lease: int, ttl: int) -> AsyncIterator[int]:
        """Refresh ``lease`` every third of its TTL, yielding the TTL after each refresh; raises
        LeaseLost once it expired or was revoked."""
        while True:
            if lease not in self._leases:
                raise LeaseLost(f"lease {lease} expired or revoked")
            self._arm(lease)
            yield self._leases[lease].ttl
            await asyncio.sleep(max(self._leases[lease].ttl / 3, 0.05))

    # -- reads -------------------------------------------------------------------------
    async def get_prefix(self, prefix: str) -> Snapshot:
        """A consistent snapshot of every key under ``prefix``, with the current revision."""
        items = [kv for key, kv in sorted(self._data.items()) if key.startswith(prefix)]
        return Snapshot(self.revision, items)

    async def watch_prefix(
        self, prefix: str, start_revision: int
    ) -> AsyncIterator[list[WatchEvent]]:
        """Batches of events for keys under ``prefix``, from ``start_revision`` on (history first,
        then live changes)."""
        queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self._watchers.add(queue)
        try:
            backlog = [
                e
                for e in self._history
                if e.mod_revision >= start_revision and e.key.startswith(prefix)
            ]
            if backlog:
                yield backlog
            seen = backlog[-1].mod_revision if backlog else start_revision - 1
            while True:
                batch = [await queue.get()]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                batch = [e for e in batch if e.key.startswith(prefix) and e.mod_revision > seen]
                if batch:
                    seen = batch[-1].mod_revision
                    yield batch
        finally:
            self._watchers.discard(queue)

    async def close(self) -> None:
        """Nothing to release (an in-process store); kept for the EtcdClient protocol."""
        pass


_default: LocalStore | None = None


def default_store() -> LocalStore:
    """The process-wide store behind ``local:///service`` targets."""
    global _default
    if _default is None:
        _default = LocalStore()
    return _default

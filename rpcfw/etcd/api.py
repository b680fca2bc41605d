"""What rpcfw needs from etcd, independent of the client library (contract; no IO here).

``rpcfw/etcd/`` is the only place that imports an etcd client library; the registrar and the
``etcd://`` resolver use only these types and the :class:`EtcdClient` protocol.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "EtcdClient",
    "EtcdError",
    "EtcdUnavailable",
    "KeyValue",
    "LeaseLost",
    "Snapshot",
    "WatchCompacted",
    "WatchEvent",
    "WatchEventType",
]


class EtcdError(Exception):
    """Any etcd failure."""


class EtcdUnavailable(EtcdError):
    """No etcd endpoint answered (down, unreachable, timed out)."""


class LeaseLost(EtcdError):
    """The lease is gone (expired, revoked, or etcd lost its data)."""


class WatchCompacted(EtcdError):
    """The watch's start revision was compacted away: resync from a fresh snapshot."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted (compact revision {compact_revision})")
        self.compact_revision = compact_revision


@dataclass(frozen=True, slots=True)
class KeyValue:
    """A key as etcd stores it: its value, the revision that last changed it and its lease (0:
    none)."""

    key: str
    value: bytes
    mod_revision: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A consistent read of a prefix at ``revision``."""

    revision: int
    items: Sequence[KeyValue]


class WatchEventType(enum.Enum):
    """What a watch event did to its key: PUT or DELETE."""

    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change seen by a prefix watch: the key, its new value (empty for DELETE) and the revision
    of the change."""

    type: WatchEventType
    key: str
    value: bytes  # empty for DELETE
    mod_revision: int


class EtcdClient(Protocol):
    """An etcd v3 client for one cluster (several endpoints; fails over between them)."""

    async def get_prefix(self, prefix: str) -> Snapshot: ...

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Returns the new revision."""
        ...

    async def delete(self, key: str) -> None: ...

    async def grant_lease(self, ttl: int) -> int:
        """Returns the lease id (etcd grants at least 2 s)."""
        ...

    async def revoke_lease(self, lease: int) -> None: ...

    def keep_alive(self, lease: int, ttl: int) -> AsyncIterator[int]:
        """One long-lived keepalive stream; yields the TTL after each refresh. Raises
        LeaseLost when etcd says the lease is gone, EtcdUnavailable when the stream breaks."""
        ...

    def watch_prefix(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
        """Batches of events from ``start_revision`` on. Raises WatchCompacted, or
        EtcdUnavailable when the stream breaks (callers resume from last revision + 1)."""
        ...

    async def close(self) -> None: ...

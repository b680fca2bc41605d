"""etcd adapter: the only part of rpcfw that talks to etcd (needs the ``etcd`` extra).

The contract (:mod:`rpcfw.etcd.api`) imports nothing optional; :class:`Etcd3PyClient` is loaded
on first access so ``import rpcfw.etcd`` works without etcd3-py installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .api import (
    EtcdClient,
    EtcdError,
    EtcdUnavailable,
    KeyValue,
    LeaseLost,
    Snapshot,
    WatchCompacted,
    WatchEvent,
    WatchEventType,
)

if TYPE_CHECKING:
    from .client import Etcd3PyClient

__all__ = (
    "Etcd3PyClient",
    "EtcdClient",
    "EtcdError",
    "EtcdUnavailable",
    "KeyValue",
    "LeaseLost",
    "Snapshot",
    "WatchCompacted",
    "WatchEvent",
    "WatchEventType",
)


def __getattr__(name: str) -> Any:
    if name == "Etcd3PyClient":
        from .client import Etcd3PyClient

        return Etcd3PyClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""InstanceTracker: the live instance set of one service, from a snapshot plus watch events
(pure). It knows the last revision it saw, so a broken watch resumes at revision + 1."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..endpoint import Endpoint
from ..etcd.api import KeyValue, WatchEvent, WatchEventType
from .instance import Instance, parse_instance

__all__ = ["Diff", "InstanceTracker"]

log = logging.getLogger("rpcfw.registry")


@dataclass(frozen=True, slots=True)
class Diff:
    """What changed (Kitex-style): keys added, updated (new value), removed."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.removed)


class InstanceTracker:
    """The live instances under one service prefix, kept from a snapshot plus watch events, with the
    last revision seen (a broken watch resumes at revision + 1)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.instances: dict[str, Instance] = {}
        self.revision = 0

    def reset(self, revision: int, items: Iterable[KeyValue]) -> Diff:
        """Replace everything with a snapshot read at ``revision``."""
        fresh: dict[str, Instance] = {}
        for item in items:
            instance = self._parse(item.key, item.value)
            if instance is not None:
                fresh[item.key] = instance
        diff = Diff(
            added=tuple(sorted(fresh.keys() - self.instances.keys())),
            updated=tuple(
                sorted(
                    k for k in fresh.keys() & self.instances.keys() if fresh[k] != self.instances[k]
                )
            ),
            removed=tuple(sorted(self.instances.keys() - fresh.keys())),
        )
        self.instances = fresh
        self.revision = revision
        return diff

    def apply(self, events: Sequence[WatchEvent]) -> Diff:
        """Apply a batch of watch events (older than what we have are ignored)."""
        added: list[str] = []
        updated: list[str] = []
        removed: list[str] = []
        for event in events:
            if event.mod_revision <= self.revision and event.mod_revision:
                continue
            self.revision = max(self.revision, event.mod_revision)
            if event.type is WatchEventType.DELETE:
                if self.instances.pop(event.key, None) is not None:
                    removed.append(event.key)
                continue
            instance = self._parse(event.key, event.value)
            if instance is None:
                continue
            previous = self.instances.get(event.key)
            self.instances[event.key] = instance
            if previous is None:
                added.append(event.key)
            elif previous != instance:
                updated.append(event.key)
        return Diff(tuple(added), tuple(updated), tuple(removed))

    def endpoints(self) -> list[Endpoint]:
        return sorted((i.endpoint() for i in self.instances.values()), key=lambda e: e.key)

    def _parse(self, key: str, value: bytes) -> Instance | None:
        try:
            return parse_instance(self.prefix, key, value)
        except ValueError as exc:
            log.warning("ignoring registry entry: %s", exc)
            return None

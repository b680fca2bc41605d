"""SettlingView: what a registry resolver tells the channel while the registry settles (pure).

After a resync (etcd came back empty or compacted, and a fresh snapshot replaced what the
resolver knew) or a watch that resumed after the registry was unreachable, the registry may
briefly list fewer instances than are alive: servers re-register only when they notice their
lease is gone, and leases that expired while etcd hung are deleted the moment it resumes.
Publishing that set at once would move every call onto the few servers that re-registered
first, or onto none.

So for ``window`` seconds after such an event the view is the union of the endpoints known
before it and those listed now (new ones are used at once; removals wait for the window to end).
After the window the view is what the registry lists, except that a resync never replaces a
non-empty set by an empty one: the last known endpoints are kept until the registry lists
an instance again (the channel fails fast on endpoints that are really gone).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..endpoint import Endpoint

__all__ = ["SettlingView"]


class SettlingView:
    """What a registry resolver publishes while the registry settles after a resync: for ``window``
    seconds the union of the endpoints known before and those listed now (see the module
    docstring)."""

    def __init__(self, window: float) -> None:
        if window < 0:
            raise ValueError("window must be >= 0")
        self.window = window
        self._held: list[Endpoint] = []  # known before the resync
        self._until: float | None = None  # end of the settling window

    @property
    def settling_until(self) -> float | None:
        """When the window ends (ask for the view again then), or None when not settling."""
        return self._until

    @property
    def holding(self) -> bool:
        """Endpoints the registry no longer lists are still in the view."""
        return bool(self._held)

    def resynced(self, now: float, before: Sequence[Endpoint]) -> None:
        """The registry's view was replaced or resumed after a gap: settle from ``now``.
        ``before``: the view published before (what clients were using)."""
        held = {e.key: e for e in self._held}
        held.update((e.key, e) for e in before)
        self._held = list(held.values())
        self._until = now + self.window

    def view(self, now: float, listed: Sequence[Endpoint]) -> list[Endpoint]:
        """The endpoints to publish at ``now`` when the registry lists ``listed``."""
        if self._until is not None and now >= self._until:
            self._until = None  # the window is over
        if not self._held:
            return _sorted(listed)
        if self._until is None and listed:  # settled: the registry's word again
            self._held = []
            return _sorted(listed)
        merged = {e.key: e for e in self._held}
        merged.update((e.key, e) for e in listed)  # a listed endpoint's attributes win
        return _sorted(merged.values())


def _sorted(endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    return sorted(endpoints, key=lambda e: e.key)

"""``Endpoint``: one address a resolver found, as resolvers hand them to balancers. It lives
here, below both, so that neither depends on the other for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Endpoint"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address a resolver found, with attributes (``weight``, ``zone``, ``version``, ...).
    A Unix domain socket is ``Endpoint("unix:/abs/path", 0)`` or
    ``Endpoint("unix-abstract:name", 0)``."""

    host: str
    port: int
    attributes: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[str, int]:
        """Identity for diffing resolver updates: the address, not the attributes."""
        return (self.host, self.port)

    @property
    def weight(self) -> int:
        """The ``weight`` attribute as an int >= 0 (1 when absent or not a number); balancers that
        weigh endpoints read it."""
        try:
            weight = int(self.attributes.get("weight", 1))
        except (TypeError, ValueError):
            return 1
        return max(weight, 0)

    def __str__(self) -> str:
        if self.host.startswith(("unix:", "unix-abstract:")):  # a unix socket (port 0)
            return self.host
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

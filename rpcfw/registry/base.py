"""Registrar: how a server announces its instances (and withdraws them before draining)."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .instance import Instance

__all__ = ["Registrar", "Registration"]


@dataclass(frozen=True, slots=True)
class Registration:
    """How a server describes its instances to a registry.

    ``advertise_host``: the address clients should dial (default: the bound host);
    ``instance_id``: unique per server (default ``host:port``)."""

    weight: int = 1
    zone: str = ""
    version: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    advertise_host: str | None = None
    instance_id: str | None = None

    def instances(self, services: Sequence[str], host: str, port: int) -> list[Instance]:
        """The instances to announce for ``services`` served at ``host``:``port``
        (``advertise_host`` and ``instance_id`` override the defaults)."""
        address = self.advertise_host or host
        instance_id = self.instance_id or f"{address}:{port}"
        return [
            Instance(
                service,
                instance_id,
                address,
                port,
                self.weight,
                self.zone,
                self.version,
                dict(self.metadata),
            )
            for service in services
        ]


class Registrar(abc.ABC):
    """How a server announces its instances to a registry and withdraws them:
    ``Server(registry=...)`` calls ``register`` once it listens and ``deregister`` first when it
    stops."""

    @abc.abstractmethod
    async def register(self, instances: Sequence[Instance]) -> None:
        """Announce ``instances``; keep them announced until ``deregister``."""

    @abc.abstractmethod
    async def deregister(self) -> None:
        """Withdraw everything this registrar announced (first step of a graceful stop)."""

"""A registered service instance and its key layout (pure).

Layout: ``<prefix>/<service>/<instance-id>`` -> JSON
``{"address", "port", "weight", "zone", "version", "metadata"}``;
default prefix ``/rpcfw/services``.

Service config (gRFC A6 JSON, read by the resolver of every channel to the service):
``<config prefix>/<service>``, default ``/rpcfw/config/<service>`` (no lease).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..endpoint import Endpoint

__all__ = [
    "DEFAULT_CONFIG_PREFIX",
    "DEFAULT_PREFIX",
    "Instance",
    "config_key",
    "instance_key",
    "parse_instance",
    "service_prefix",
]

DEFAULT_PREFIX = "/rpcfw/services"
DEFAULT_CONFIG_PREFIX = "/rpcfw/config"


@dataclass(frozen=True, slots=True)
class Instance:
    """One server instance of one service as the registry lists it: address, port and the attributes
    balancers use (weight, zone, version, metadata)."""

    service: str
    instance_id: str
    address: str
    port: int
    weight: int = 1
    zone: str = ""
    version: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """The value stored under the instance's key: JSON of the address, port and attributes."""
        return json.dumps(
            {
                "address": self.address,
                "port": self.port,
                "weight": self.weight,
                "zone": self.zone,
                "version": self.version,
                "metadata": dict(self.metadata),
            },
            sort_keys=True,
        ).encode()

    def endpoint(self) -> Endpoint:
        """The instance as a resolver ``Endpoint``, its attributes carried along."""
        attributes: dict[str, Any] = {
            "weight": self.weight,
            "zone": self.zone,
            "version": self.version,
            "instance_id": self.instance_id,
            "metadata": dict(self.metadata),
        }
        return Endpoint(self.address, self.port, attributes)


def service_prefix(prefix: str, service: str) -> str:
    """The key prefix all instances of ``service`` live under (ends with ``/``)."""
    return f"{prefix.rstrip('/')}/{service}/"


def config_key(service: str, config_prefix: str = DEFAULT_CONFIG_PREFIX) -> str:
    """The key holding ``service``'s service config JSON."""
    return f"{config_prefix.rstrip('/')}/{service}"


def instance_key(prefix: str, instance: Instance) -> str:
    """The registry key of ``instance`` under ``prefix``: ``<prefix>/<service>/<instance_id>``."""
    return service_prefix(prefix, instance.service) + instance.instance_id


def parse_instance(prefix: str, key: str, value: bytes) -> Instance:
    """The instance a key/value describes; ValueError (with the key) if it is malformed."""
    base = prefix.rstrip("/") + "/"
    if not key.startswith(base):
        raise ValueError(f"{key!r} is not under {base!r}")
    service, sep, instance_id = key[len(base) :].rpartition("/")
    if not sep or not service or not instance_id:
        raise ValueError(f"{key!r}: expected {base}<service>/<instance-id>")
    try:
        data = json.loads(value)
        port = int(data["port"])
        address = str(data["address"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{key!r}: malformed instance value ({exc})") from None
    if not 0 < port < 65536 or not address:
        raise ValueError(f"{key!r}: bad address {address!r}:{port}")
    metadata = data.get("metadata") or {}
    return Instance(
        service=service,
        instance_id=instance_id,
        address=address,
        port=port,
        weight=int(data.get("weight", 1)),
        zone=str(data.get("zone", "")),
        version=str(data.get("version", "")),
        metadata={str(k): str(v) for k, v in dict(metadata).items()},
    )

"""Service registration: instances, the lease registrar, the embedded local store."""

from collections.abc import Sequence

from .base import Registrar
from .instance import (
    DEFAULT_CONFIG_PREFIX,
    DEFAULT_PREFIX,
    Instance,
    config_key,
    instance_key,
    parse_instance,
    service_prefix,
)
from .local import LocalStore, default_store
from .registrar import LeaseRegistrar
from .tracker import Diff, InstanceTracker


def etcd_registrar(
    endpoints: str | Sequence[str],
    *,
    ttl: int = 10,
    prefix: str = DEFAULT_PREFIX,
    timeout: float = 1.0,
) -> LeaseRegistrar:
    """A registrar for an etcd cluster (``"h1:2379,h2:2379"`` or a list), owning its client."""
    from ..etcd import Etcd3PyClient

    listed = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    return LeaseRegistrar(
        Etcd3PyClient(listed, timeout=timeout), ttl=ttl, prefix=prefix, own_client=True
    )


__all__ = (
    "etcd_registrar",
    "DEFAULT_CONFIG_PREFIX",
    "DEFAULT_PREFIX",
    "Diff",
    "Instance",
    "InstanceTracker",
    "LeaseRegistrar",
    "LocalStore",
    "Registrar",
    "config_key",
    "default_store",
    "instance_key",
    "parse_instance",
    "service_prefix",
)

"""Service registration: instances, the lease registrar, the embedded local store."""

from .base import Registrar
from .instance import DEFAULT_PREFIX, Instance, instance_key, parse_instance, service_prefix
from .local import LocalStore, default_store
from .registrar import LeaseRegistrar
from .tracker import Diff, InstanceTracker

__all__ = (
    "DEFAULT_PREFIX",
    "Diff",
    "Instance",
    "InstanceTracker",
    "LeaseRegistrar",
    "LocalStore",
    "Registrar",
    "default_store",
    "instance_key",
    "parse_instance",
    "service_prefix",
)

"""The table of resolvers by target scheme (``dns``, ``unix``, ``etcd``...); users can
register their own."""

from __future__ import annotations

from ..registry.local import default_store
from .base import Resolver, ResolverFactory, ResolverListener
from .dns import DnsResolver
from .service_registry import ServiceRegistryResolver
from .static import StaticResolver
from .target import Target
from .unix import UnixResolver

__all__ = ["create_resolver", "register_resolver", "registered_schemes"]


def _local(target: Target, listener: ResolverListener) -> Resolver:
    return ServiceRegistryResolver(target, listener, default_store())


def _etcd(target: Target, listener: ResolverListener) -> Resolver:
    from ..etcd import Etcd3PyClient  # the etcd extra: imported when an etcd target is used

    if not target.authority:
        raise ValueError(f"{target.raw!r} names no etcd endpoint (etcd://host:port/service)")
    client = Etcd3PyClient(target.authority.split(","))
    return ServiceRegistryResolver(target, listener, client, close_client=client.close)


_RESOLVERS: dict[str, ResolverFactory] = {
    "static": StaticResolver,
    "dns": DnsResolver,
    "local": _local,
    "etcd": _etcd,
    "unix": UnixResolver,
    "unix-abstract": UnixResolver,
}


def register_resolver(scheme: str, factory: ResolverFactory) -> None:
    """Make ``scheme://...`` targets use ``factory(target, listener)``."""
    _RESOLVERS[scheme.lower()] = factory


def registered_schemes() -> list[str]:
    """The target schemes that have a resolver, sorted."""
    return sorted(_RESOLVERS)


def create_resolver(target: Target, listener: ResolverListener) -> Resolver:
    """A resolver for ``target`` from the factory registered for its scheme, reporting to
    ``listener``; ValueError for an unknown scheme."""
    factory = _RESOLVERS.get(target.scheme)
    if factory is None:
        known = ", ".join(registered_schemes())
        raise ValueError(
            f"no resolver for scheme {target.scheme!r} in {target.raw!r} (known: {known})"
        )
    return factory(target, listener)

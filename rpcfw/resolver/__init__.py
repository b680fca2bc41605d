"""Resolvers: targets to endpoint sets (static, dns, unix; pluggable by scheme)."""

from .base import Resolver, ResolverFactory, ResolverListener, ServiceConfigListener
from .dns import DnsResolver
from .schemes import create_resolver, register_resolver, registered_schemes
from .static import StaticResolver
from .target import Target, parse_address, parse_target
from .unix import UnixResolver

__all__ = (
    "DnsResolver",
    "Resolver",
    "ResolverFactory",
    "ResolverListener",
    "ServiceConfigListener",
    "StaticResolver",
    "Target",
    "UnixResolver",
    "create_resolver",
    "parse_address",
    "parse_target",
    "register_resolver",
    "registered_schemes",
)

"""Channel targets, parsed without IO: ``scheme://authority/endpoint``.

- ``host:port`` (no scheme): one static address (the name is resolved when connecting)
- ``static:///h1:p1,h2:p2``: a fixed list
- ``dns:///host:port``: every address ``host`` resolves to, re-resolved periodically
- ``unix:path``, ``unix:///abs/path``, ``unix-abstract:name``: one Unix domain socket (the
  schemes ``unix`` and ``unix-abstract`` need no ``//``: see ``rpcfw._unix``)
- other schemes (``etcd://...``) belong to resolvers registered under that scheme
"""

from __future__ import annotations

from dataclasses import dataclass

from .._unix import parse_unix
from ..endpoint import Endpoint

__all__ = ["Target", "parse_address", "parse_address_list", "parse_target"]


@dataclass(frozen=True, slots=True)
class Target:
    """A channel target split into ``scheme``, ``authority`` and ``endpoint``, with the ``raw`` text
    it came from."""

    scheme: str
    authority: str
    endpoint: str
    raw: str


def parse_address(text: str) -> Endpoint:
    """``host:port`` or ``[v6]:port``; raises ValueError with the reason."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"invalid address {text!r}: expected [host]:port")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"invalid address {text!r}: expected host:port")
    if not host:
        raise ValueError(f"invalid address {text!r}: empty host")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"invalid address {text!r}: port must be a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"invalid address {text!r}: port out of range")
    return Endpoint(host, port)


def parse_address_list(text: str) -> list[Endpoint]:
    """Comma-separated ``host:port`` addresses as endpoints; ValueError when there are none or one
    is malformed."""
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("no addresses given")
    return [parse_address(p) for p in parts]


def parse_target(target: str) -> Target:
    """Split a channel target; raises ValueError for a malformed one. A unix target's
    endpoint is the socket path (or the abstract name), its authority is empty."""
    unix = parse_unix(target)
    if unix is not None:
        return Target("unix-abstract" if unix.abstract else "unix", "", unix.path, target)
    if "://" not in target:
        parse_address(target)  # validate now, not on the first call
        return Target("static", "", target, target)
    scheme, _, rest = target.partition("://")
    if not scheme or not scheme.replace("+", "").replace("-", "").isalnum():
        raise ValueError(f"invalid target scheme in {target!r}")
    authority, _, endpoint = rest.partition("/")
    return Target(scheme.lower(), authority, endpoint, target)

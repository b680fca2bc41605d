"""Channel targets: ``host:port``, ``static:///h1:p1,h2:p2`` (pure parsing, no IO)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Address", "Target", "parse_target"]


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    addresses: tuple[Address, ...]
    authority: str


def _parse_address(text: str) -> Address:
    text = text.strip()
    if text.startswith("["):  # [v6]:port
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
    return Address(host, port)


def parse_target(target: str) -> Target:
    """Parse a channel target; raises ValueError with the reason for a bad one."""
    if "://" in target:
        scheme, _, rest = target.partition("://")
        if scheme != "static":
            raise ValueError(
                f"unsupported target scheme {scheme!r} in {target!r} (supported: static, host:port)"
            )
        rest = rest.lstrip("/")
        parts = [p for p in rest.split(",") if p.strip()]
        if not parts:
            raise ValueError(f"target {target!r} lists no addresses")
        addresses = tuple(_parse_address(p) for p in parts)
        return Target(scheme, addresses, str(addresses[0]))
    address = _parse_address(target)
    return Target("static", (address,), str(address))

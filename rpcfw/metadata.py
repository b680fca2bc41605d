"""gRPC metadata: the user-facing multi-map and its HTTP/2 header encoding (pure, no IO)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import overload
from urllib.parse import quote, unquote

__all__ = [
    "Metadata",
    "MetadataLike",
    "MetadataValue",
    "decode_grpc_message",
    "decode_metadata",
    "decode_timeout",
    "encode_grpc_message",
    "encode_metadata",
    "encode_timeout",
]

MetadataValue = str | bytes
MetadataLike = Mapping[str, MetadataValue] | Iterable[tuple[str, MetadataValue]]

_KEY_RE = re.compile(r"^[0-9a-z_.\-]+$")
_VALUE_RE = re.compile(r"^[ -~]*$")  # printable ASCII and space
# Headers that belong to the transport, never to user metadata.
_RESERVED = frozenset({"te", "content-type", "user-agent", "content-length", "host"})
# grpc-* headers user code may set and see: a server's retry pushback (gRFC A6); and one it
# may only see: the attempt number of a retried or hedged call
_GRPC_ALLOWED = frozenset({"grpc-retry-pushback-ms"})
_GRPC_VISIBLE = _GRPC_ALLOWED | {"grpc-previous-rpc-attempts"}


class Metadata(Sequence[tuple[str, MetadataValue]]):
    """An ordered, immutable multi-map of metadata: keys are lower-case ASCII; keys ending in
    ``-bin`` carry bytes, all other keys carry str."""

    __slots__ = ("_items",)

    def __init__(self, items: MetadataLike | None = None) -> None:
        if items is None:
            self._items: tuple[tuple[str, MetadataValue], ...] = ()
        elif isinstance(items, Mapping):
            self._items = tuple(items.items())
        else:
            self._items = tuple(items)

    @overload
    def __getitem__(self, index: int) -> tuple[str, MetadataValue]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[str, MetadataValue]]: ...
    def __getitem__(
        self, index: int | slice
    ) -> tuple[str, MetadataValue] | Sequence[tuple[str, MetadataValue]]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[str, MetadataValue]]:
        return iter(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Metadata):
            return self._items == other._items
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Metadata({list(self._items)!r})"

    def get(self, key: str, default: MetadataValue | None = None) -> MetadataValue | None:
        """The first value for ``key``, or ``default``."""
        for k, v in self._items:
            if k == key:
                return v
        return default

    def get_text(self, key: str, default: str | None = None) -> str | None:
        """The first value of a text key as ``str`` (typed: no ``bytes`` to rule out), or
        ``default``. A ``-bin`` key carries bytes: use ``get_binary``."""
        if key.endswith("-bin"):
            raise ValueError(f"{key!r} is a binary key (-bin): use get_binary()")
        value = self.get(key)
        if value is None:
            return default
        assert isinstance(value, str)  # the class invariant: other keys carry str
        return value

    def get_binary(self, key: str, default: bytes | None = None) -> bytes | None:
        """The first value of a ``-bin`` key as ``bytes``, or ``default``."""
        if not key.endswith("-bin"):
            raise ValueError(f"{key!r} is a text key: use get_text()")
        value = self.get(key)
        if value is None:
            return default
        assert isinstance(value, bytes)  # the class invariant: -bin keys carry bytes
        return value

    def get_all(self, key: str) -> list[MetadataValue]:
        """Every value for ``key``, in order."""
        return [v for k, v in self._items if k == key]

    def keys(self) -> list[str]:
        """Every key in order, once per value (a key sent twice appears twice)."""
        return [k for k, _ in self._items]

    def to_dict(self) -> dict[str, MetadataValue]:
        """Last value wins for repeated keys."""
        return dict(self._items)

    def with_item(self, key: str, value: MetadataValue) -> Metadata:
        """A copy with ``(key, value)`` appended."""
        return Metadata((*self._items, (key, value)))

    def replaced(self, key: str, value: MetadataValue) -> Metadata:
        """A copy where ``key`` has only ``value`` (appended after the other keys)."""
        return Metadata((*((k, v) for k, v in self._items if k != key), (key, value)))

    def without(self, key: str) -> Metadata:
        """A copy without ``key``."""
        return Metadata(tuple((k, v) for k, v in self._items if k != key))


def _b64encode(value: bytes) -> str:
    return base64.b64encode(value).rstrip(b"=").decode("ascii")


def _b64decode(value: str) -> bytes:
    return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)


def encode_metadata(metadata: MetadataLike) -> list[tuple[str, str]]:
    """Validate user metadata and turn it into HTTP/2 header pairs.

    Raises ``ValueError``/``TypeError`` for reserved or malformed keys and values.
    """
    pairs = metadata.items() if isinstance(metadata, Mapping) else metadata
    out: list[tuple[str, str]] = []
    for key, value in pairs:
        if (
            key in _RESERVED
            or (key.startswith(("grpc-", ":")) and key not in _GRPC_ALLOWED)
            or not _KEY_RE.match(key)
        ):
            raise ValueError(f"invalid metadata key: {key!r}")
        if key.endswith("-bin"):
            if isinstance(value, str):
                value = value.encode()
            if not isinstance(value, bytes):
                raise TypeError(f"metadata value for {key!r} must be bytes")
            out.append((key, _b64encode(value)))
        else:
            if not isinstance(value, str):
                raise TypeError(
                    f"metadata value for {key!r} must be str (use a -bin key for bytes)"
                )
            if not _VALUE_RE.match(value):
                raise ValueError(f"invalid metadata value for {key!r}: {value!r}")
            out.append((key, value))
    return out


def decode_metadata(headers: Iterable[tuple[str, str]]) -> Metadata:
    """User metadata from received HTTP/2 headers (transport and grpc-* headers dropped)."""
    items: list[tuple[str, MetadataValue]] = []
    for key, value in headers:
        if (key.startswith((":", "grpc-")) and key not in _GRPC_VISIBLE) or key in _RESERVED:
            continue
        if key.endswith("-bin"):
            try:
                items.append((key, _b64decode(value)))
            except ValueError:
                continue  # a corrupt binary header is dropped, as grpc-go does
        else:
            items.append((key, value))
    return Metadata(items)


# grpc-message is percent-encoded UTF-8 (gRPC HTTP/2 protocol spec).
_MESSAGE_SAFE = "".join(chr(i) for i in range(0x20, 0x7F) if chr(i) != "%")


def encode_grpc_message(message: str) -> str:
    """``message`` percent-encoded for the ``grpc-message`` header, as the gRPC spec asks."""
    return quote(message, safe=_MESSAGE_SAFE, encoding="utf-8")


def decode_grpc_message(value: str) -> str:
    """A ``grpc-message`` header value percent-decoded (invalid UTF-8 replaced, never raises)."""
    return unquote(value, encoding="utf-8", errors="replace")


_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
_TIMEOUT_RE = re.compile(r"^(\d{1,8})([HMSmun])$")


def encode_timeout(seconds: float) -> str:
    """The shortest grpc-timeout value (at most 8 digits) that does not undershoot."""
    seconds = max(seconds, 0.0)
    for unit, scale in (("n", 1e-9), ("u", 1e-6), ("m", 1e-3), ("S", 1.0), ("M", 60.0)):
        value = -(-seconds // scale)  # ceil
        if value < 100_000_000:
            return f"{int(value)}{unit}"
    return f"{min(int(-(-seconds // 3600.0)), 99_999_999)}H"


def decode_timeout(value: str) -> float:
    """A ``grpc-timeout`` header value (e.g. ``100m``) in seconds; ValueError when malformed."""
    match = _TIMEOUT_RE.match(value)
    if match is None:
        raise ValueError(f"invalid grpc-timeout: {value!r}")
    return int(match.group(1)) * _TIMEOUT_UNITS[match.group(2)]

"""Pure helpers for etcd's JSON gateway (no IO): value decoding, the stream framing, message
parsing and endpoint rotation. Unit-tested in ``tests/unit/test_etcd_gateway.py``.

The gateway (etcd 3.4, grpc-gateway v1) sends int64 as strings and bytes as base64, omits fields
that hold their default (0, false, empty), and frames a server stream as JSON objects written
back to back (``{"result": {...}}`` or ``{"error": {...}}``) with no guaranteed delimiter, and
several objects may arrive in one read.
"""

from __future__ import annotations

import base64
import codecs
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .api import EtcdError, WatchEvent, WatchEventType

__all__ = [
    "EndpointRotation",
    "GatewayError",
    "JsonObjectStream",
    "WatchMessage",
    "as_int",
    "b64",
    "decode_b64",
    "normalize_endpoint",
    "parse_keepalive",
    "parse_watch",
    "prefix_range_end",
    "unwrap_stream_message",
]


class GatewayError(EtcdError):
    """An ``{"error": ...}`` object in a gateway stream."""

    def __init__(self, message: str, grpc_code: int, http_code: int) -> None:
        super().__init__(f"{message} (grpc code {grpc_code}, http {http_code})")
        self.message = message
        self.grpc_code = grpc_code
        self.http_code = http_code

    @property
    def unavailable(self) -> bool:
        """Worth trying another endpoint: Unavailable (14) or DeadlineExceeded (4)."""
        return self.grpc_code in (4, 14) or self.http_code in (502, 503, 504)


def as_int(value: object) -> int:
    """An int64 from the gateway: a string (``"123"``), an int, or absent (``None`` -> 0)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value) if value else 0
    raise ValueError(f"not an int64: {value!r}")


def decode_b64(value: object) -> bytes:
    """A bytes field from the gateway (base64; absent means empty)."""
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise ValueError(f"not a base64 string: {value!r}")
    return base64.b64decode(value, validate=True)


def b64(value: bytes | str) -> str:
    """Encode a bytes field for a gateway request."""
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode("ascii")


def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's range end for "every key starting with ``prefix``" (``\\0`` means no upper bound)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def normalize_endpoint(endpoint: str) -> str:
    """``127.0.0.1:2379`` or ``http://127.0.0.1:2379/`` -> ``127.0.0.1:2379``."""
    ep = endpoint.strip()
    if "://" in ep:
        scheme, _, ep = ep.partition("://")
        if scheme != "http":
            raise ValueError(f"only http:// etcd endpoints are supported: {endpoint!r}")
    ep = ep.rstrip("/")
    host, sep, port = ep.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"etcd endpoint must be host:port: {endpoint!r}")
    return ep


class EndpointRotation:
    """Which endpoint to try first. Sticks to the one that worked; moves on when it fails."""

    def __init__(self, endpoints: Sequence[str]) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is required")
        self._endpoints = tuple(dict.fromkeys(normalize_endpoint(e) for e in endpoints))
        self._current = 0

    @property
    def endpoints(self) -> tuple[str, ...]:
        return self._endpoints

    @property
    def current(self) -> str:
        return self._endpoints[self._current]

    def order(self) -> list[str]:
        """Every endpoint once, the current one first."""
        n = len(self._endpoints)
        return [self._endpoints[(self._current + i) % n] for i in range(n)]

    def failed(self, endpoint: str) -> None:
        """``endpoint`` failed: if it is the current one, the next one becomes current."""
        if self._endpoints[self._current] == endpoint:
            self._current = (self._current + 1) % len(self._endpoints)

    def succeeded(self, endpoint: str) -> None:
        self._current = self._endpoints.index(endpoint)


class JsonObjectStream:
    """Splits a byte stream of back-to-back JSON objects into parsed objects.

    Tracks strings and escapes, so braces inside strings do not confuse it; whitespace between
    objects is skipped; chunks may split an object (or a UTF-8 sequence) anywhere.
    """

    def __init__(self, max_object_size: int = 64 * 1024 * 1024) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buf = ""
        self._pos = 0  # scan position in _buf
        self._start = -1  # index of the current object's "{", -1 when between objects
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._max = max_object_size

    def feed(self, data: bytes) -> list[dict[str, object]]:
        self._buf += self._decoder.decode(data)
        out: list[dict[str, object]] = []
        buf = self._buf
        i = self._pos
        while i < len(buf):
            c = buf[i]
            if self._start < 0:
                if c == "{":
                    self._start, self._depth = i, 1
                elif not c.isspace():
                    raise ValueError(f"unexpected {c!r} between JSON objects")
            elif self._in_string:
                if self._escape:
                    self._escape = False
                elif c == "\\":
                    self._escape = True
                elif c == '"':
                    self._in_string = False
            elif c == '"':
                self._in_string = True
            elif c == "{" or c == "[":
                self._depth += 1
            elif c == "}" or c == "]":
                self._depth -= 1
                if self._depth == 0:
                    obj = json.loads(buf[self._start : i + 1])
                    if not isinstance(obj, dict):
                        raise ValueError("expected a JSON object")
                    out.append(obj)
                    self._start = -1
            i += 1
        # drop what is consumed
        keep_from = self._start if self._start >= 0 else len(buf)
        self._buf = buf[keep_from:]
        self._pos = i - keep_from
        if self._start >= 0:
            self._start = 0
        if len(self._buf) > self._max:
            raise ValueError(f"JSON object larger than {self._max} bytes")
        return out

    @property
    def pending(self) -> bool:
        """Inside an unfinished object."""
        return self._start >= 0


def _mapping(value: object) -> Mapping[str, object]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a JSON object, got {value!r}")
    return value


def unwrap_stream_message(obj: Mapping[str, object]) -> Mapping[str, object]:
    """``{"result": X}`` -> X; ``{"error": E}`` -> raises :class:`GatewayError`."""
    if "error" in obj:
        err = _mapping(obj["error"])
        raise GatewayError(
            str(err.get("message", "")), as_int(err.get("grpc_code")), as_int(err.get("http_code"))
        )
    return _mapping(obj.get("result"))


@dataclass(frozen=True, slots=True)
class WatchMessage:
    revision: int
    created: bool
    canceled: bool
    compact_revision: int
    cancel_reason: str
    events: list[WatchEvent]


def parse_watch(result: Mapping[str, object]) -> WatchMessage:
    header = _mapping(result.get("header"))
    events: list[WatchEvent] = []
    raw_events = result.get("events") or []
    if not isinstance(raw_events, list):
        raise ValueError("watch events must be a list")
    for raw in raw_events:
        ev = _mapping(raw)
        kv = _mapping(ev.get("kv"))
        kind = WatchEventType.DELETE if ev.get("type") == "DELETE" else WatchEventType.PUT
        events.append(
            WatchEvent(
                type=kind,
                key=decode_b64(kv.get("key")).decode("utf-8", errors="surrogateescape"),
                value=decode_b64(kv.get("value")) if kind is WatchEventType.PUT else b"",
                mod_revision=as_int(kv.get("mod_revision")),
            )
        )
    return WatchMessage(
        revision=as_int(header.get("revision")),
        created=bool(result.get("created", False)),
        canceled=bool(result.get("canceled", False)),
        compact_revision=as_int(result.get("compact_revision")),
        cancel_reason=str(result.get("cancel_reason", "")),
        events=events,
    )


def parse_keepalive(result: Mapping[str, object]) -> int:
    """The TTL left after a keepalive (0 means etcd does not know the lease)."""
    return as_int(result.get("TTL"))

"""HPACK for rpcfw's transport: a stateless, cached encoder and a bounded decoder.

Encoder: rpcfw never inserts into the peer's dynamic table. Every field is an index into the
static table (RFC 7541 appendix A) or a literal "without indexing", so the encoding of a field
depends on nothing but the field: it is computed once and cached. gRPC repeats the same fields
on every call (content-type, te, user-agent, :status 200, grpc-status 0), so a header block is
mostly a join of cached bytes. The cost is a few more bytes on the wire per block, which is cheap
next to the CPU an indexing encoder spends.

Decoding is in hpack_decoder.py (re-exported here).
"""

from __future__ import annotations

from hpack.table import HeaderTable

from .hpack_decoder import HeaderBlockError, HeaderBlockTooLarge, HeaderDecoder

__all__ = [
    "HeaderBlockError",
    "HeaderBlockTooLarge",
    "HeaderDecoder",
    "HeaderEncoder",
    "header_list_size",
]

Headers = list[tuple[str, str]]

_STATIC_FULL: dict[tuple[str, str], int] = {}
_STATIC_NAME: dict[str, int] = {}
for _index, (_name, _value) in enumerate(HeaderTable.STATIC_TABLE, start=1):
    _STATIC_FULL.setdefault((_name.decode(), _value.decode()), _index)
    _STATIC_NAME.setdefault(_name.decode(), _index)

_CACHE_LIMIT = 4096


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 7541 5.1: ``value`` with an N-bit prefix, ``first`` holding the pattern bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(raw: bytes) -> bytes:
    return _integer(len(raw), 7, 0) + raw


def _encode_field(name: str, value: str) -> bytes:
    index = _STATIC_FULL.get((name, value))
    if index is not None:
        return _integer(index, 7, 0x80)
    value_bytes = _string(value.encode())
    name_index = _STATIC_NAME.get(name)
    if name_index is not None:  # literal without indexing, indexed name (0000xxxx)
        return _integer(name_index, 4, 0x00) + value_bytes
    return b"\x00" + _string(name.encode()) + value_bytes


def header_list_size(headers: Headers) -> int:
    """The size SETTINGS_MAX_HEADER_LIST_SIZE limits: name + value + 32 per field."""
    return sum(len(name) + len(value) + 32 for name, value in headers)


class HeaderEncoder:
    """Encodes header lists without touching the peer's dynamic table (see module doc)."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], bytes] = {}

    def encode(self, headers: Headers) -> bytes:
        cache = self._cache
        parts = []
        for field in headers:
            encoded = cache.get(field)
            if encoded is None:
                encoded = _encode_field(*field)
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                cache[field] = encoded
            parts.append(encoded)
        return b"".join(parts)

"""HPACK decoding (RFC 7541) for rpcfw's transport: bounded, and cached per header block.

Peers use the dynamic table, so after the first calls a gRPC request's header block is mostly
the same bytes every time (indexed fields). A block whose decoding did not change the dynamic
table decodes the same way for as long as the table stays unchanged, so its result (fields,
list size, and whatever the caller derives from them) is kept and reused until the next table
change. Huffman-coded strings are decoded with hpack's table.

Bounds: the dynamic table never exceeds the size we advertised; a block that decodes to more
than ``max_decoded_size`` (an HPACK bomb) stops as soon as it gets there.
"""

from __future__ import annotations

from collections import deque

from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

__all__ = ["DecodedBlock", "HeaderBlockError", "HeaderBlockTooLarge", "HeaderDecoder"]

Headers = list[tuple[str, str]]

_STATIC: list[tuple[str, str]] = [
    (name.decode("latin-1"), value.decode("latin-1")) for name, value in HeaderTable.STATIC_TABLE
]
_STATIC_COUNT = len(_STATIC)
_CACHE_LIMIT = 512
_HUFFMAN_CACHE_LIMIT = 1024


class HeaderBlockError(Exception):
    """The block is not valid HPACK: a connection error (COMPRESSION_ERROR)."""


class HeaderBlockTooLarge(HeaderBlockError):
    """The block decodes to more than the decoder's cap (an HPACK bomb): a connection error."""


class DecodedBlock:
    """One decoded header block: its fields, their list size (name + value + 32 each), and a
    slot the caller may use to remember a verdict about it (reused with the block)."""

    __slots__ = ("headers", "size", "verdict")

    def __init__(self, headers: Headers, size: int) -> None:
        self.headers = headers
        self.size = size
        self.verdict: object = None


def _integer(data: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    mask = (1 << prefix_bits) - 1
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        if pos >= len(data):
            raise HeaderBlockError("truncated integer")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise HeaderBlockError("integer too large")


class HeaderDecoder:
    """Decodes the peer's header blocks; strings come back as latin-1 (byte for byte)."""

    __slots__ = (
        "_cache",
        "_entries",
        "_huffman",
        "_limit",
        "_max_decoded",
        "_max_table",
        "_size",
    )

    def __init__(self, table_size: int, max_decoded_size: int) -> None:
        self._max_table = table_size  # what we advertised: the peer's limit can only be lower
        self._limit = table_size
        self._max_decoded = max_decoded_size
        self._entries: deque[tuple[str, str]] = deque()  # newest first
        self._size = 0
        self._cache: dict[bytes, DecodedBlock] = {}
        self._huffman: dict[bytes, str] = {}

    def decode(self, block: bytes) -> Headers:
        return self.decode_block(block).headers

    def decode_block(self, block: bytes) -> DecodedBlock:
        cached = self._cache.get(block)
        if cached is not None:
            return cached
        table_changed, decoded = self._decode(block)
        if table_changed:
            self._cache.clear()
        else:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[block] = decoded
        return decoded

    def _field(self, index: int) -> tuple[str, str]:
        if 0 < index <= _STATIC_COUNT:
            return _STATIC[index - 1]
        dynamic = index - _STATIC_COUNT - 1
        if index == 0 or dynamic >= len(self._entries):
            raise HeaderBlockError(f"invalid table index {index}")
        return self._entries[dynamic]

    def _string(self, data: bytes, pos: int) -> tuple[str, int]:
        if pos >= len(data):
            raise HeaderBlockError("truncated string")
        huffman = data[pos] & 0x80
        length, pos = _integer(data, pos, 7)
        end = pos + length
        if end > len(data):
            raise HeaderBlockError("truncated string")
        raw = data[pos:end]
        if not huffman:
            return raw.decode("latin-1"), end
        text = self._huffman.get(raw)
        if text is None:
            try:
                text = decode_huffman(raw).decode("latin-1")
            except Exception as exc:
                raise HeaderBlockError(f"invalid Huffman string: {exc}") from None
            if len(self._huffman) >= _HUFFMAN_CACHE_LIMIT:
                self._huffman.clear()
            self._huffman[raw] = text
        return text, end

    def _insert(self, field: tuple[str, str]) -> None:
        size = len(field[0]) + len(field[1]) + 32
        entries = self._entries
        if size > self._limit:
            entries.clear()
            self._size = 0
            return
        while self._size + size > self._limit:
            name, value = entries.pop()
            self._size -= len(name) + len(value) + 32
        entries.appendleft(field)
        self._size += size

    def _resize(self, new_limit: int) -> None:
        if new_limit > self._max_table:
            raise HeaderBlockError(f"table size update {new_limit} above {self._max_table}")
        self._limit = new_limit
        entries = self._entries
        while self._size > new_limit:
            name, value = entries.pop()
            self._size -= len(name) + len(value) + 32

    def _decode(self, data: bytes) -> tuple[bool, DecodedBlock]:
        headers: Headers = []
        total = 0
        changed = False
        pos = 0
        end = len(data)
        max_decoded = self._max_decoded
        while pos < end:
            byte = data[pos]
            if byte & 0x80:  # indexed field
                index, pos = _integer(data, pos, 7)
                field = self._field(index)
            elif byte & 0x40:  # literal with incremental indexing
                index, pos = _integer(data, pos, 6)
                if index:
                    name = self._field(index)[0]
                else:
                    name, pos = self._string(data, pos)
                value, pos = self._string(data, pos)
                field = (name, value)
                self._insert(field)
                changed = True
            elif byte & 0x20:  # dynamic table size update: only before the first field
                if headers:
                    raise HeaderBlockError("table size update after a header field")
                limit, pos = _integer(data, pos, 5)
                self._resize(limit)
                changed = True
                continue
            else:  # literal without indexing (0000) or never indexed (0001)
                index, pos = _integer(data, pos, 4)
                if index:
                    name = self._field(index)[0]
                else:
                    name, pos = self._string(data, pos)
                value, pos = self._string(data, pos)
                field = (name, value)
            headers.append(field)
            total += len(field[0]) + len(field[1]) + 32
            if total > max_decoded:
                raise HeaderBlockTooLarge(f"header block decodes to more than {max_decoded} bytes")
        return changed, DecodedBlock(headers, total)

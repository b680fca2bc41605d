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
# only small blocks and strings are cached (gRPC's repeated blocks are tens of bytes): a cache
# entry must not hold a large block the peer sent once (up to max_header_block_size each)
_CACHEABLE_BLOCK = 1024
_CACHEABLE_HUFFMAN = 256


class HeaderBlockError(Exception):
    """The block is not valid HPACK: a connection error (COMPRESSION_ERROR)."""


class HeaderBlockTooLarge(HeaderBlockError):
    """The block decodes to more than the decoder's cap (an HPACK bomb): a connection error."""


class _Truncated(HeaderBlockError):
    """The data ends inside a field. ``length``/``start``: the value string being read when
    it ended (known once its length prefix was read); ``name``/``insert``: its field."""

    def __init__(self, length: int = -1, start: int = 0) -> None:
        super().__init__("truncated header block")
        self.length = length
        self.start = start
        self.name: str | None = None
        self.insert = False


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
            raise _Truncated()
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
        "_fields",
        "_huffman",
        "_keep_limit",
        "_limit",
        "_max_decoded",
        "_max_table",
        "_pending",
        "_seen_field",
        "_size",
        "_skip",
        "_skipped",
        "_total",
    )

    def __init__(self, table_size: int, max_decoded_size: int) -> None:
        self._max_table = table_size  # what we advertised: the peer's limit can only be lower
        self._limit = table_size
        self._max_decoded = max_decoded_size
        self._entries: deque[tuple[str, str]] = deque()  # newest first
        self._size = 0
        self._cache: dict[bytes, DecodedBlock] = {}
        self._huffman: dict[bytes, str] = {}
        self.begin_block(0)

    def decode(self, block: bytes) -> Headers:
        return self.decode_block(block).headers

    def decode_block(self, block: bytes) -> DecodedBlock:
        cached = self._cache.get(block)
        if cached is not None:
            return cached
        table_changed, decoded = self._decode(block)
        if table_changed:
            self._cache.clear()
        elif len(block) <= _CACHEABLE_BLOCK:
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
            raise _Truncated()
        huffman = data[pos] & 0x80
        length, pos = _integer(data, pos, 7)
        end = pos + length
        if end > len(data):
            raise _Truncated(length, pos)
        raw = data[pos:end]
        if not huffman:
            return raw.decode("latin-1"), end
        cacheable = length <= _CACHEABLE_HUFFMAN
        text = self._huffman.get(raw) if cacheable else None
        if text is None:
            try:
                text = decode_huffman(raw).decode("latin-1")
            except Exception as exc:
                raise HeaderBlockError(f"invalid Huffman string: {exc}") from None
            if cacheable:
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

    def _one_field(
        self, data: bytes, pos: int, first: bool
    ) -> tuple[tuple[str, str] | None, int, bool]:
        """The field at ``pos`` (None for a table size update), where the next one starts,
        and whether the dynamic table changed. Raises _Truncated if ``data`` ends inside it."""
        byte = data[pos]
        if byte & 0x80:  # indexed field
            index, pos = _integer(data, pos, 7)
            return self._field(index), pos, False
        if byte & 0x40:  # literal with incremental indexing
            index, pos = _integer(data, pos, 6)
            insert = True
        elif byte & 0x20:  # dynamic table size update: only before the first field
            if not first:
                raise HeaderBlockError("table size update after a header field")
            limit, pos = _integer(data, pos, 5)
            self._resize(limit)
            return None, pos, True
        else:  # literal without indexing (0000) or never indexed (0001)
            index, pos = _integer(data, pos, 4)
            insert = False
        if index:
            name = self._field(index)[0]
        else:
            name, pos = self._string(data, pos)
        try:
            value, pos = self._string(data, pos)
        except _Truncated as truncated:
            truncated.name = name
            truncated.insert = insert
            raise
        field = (name, value)
        if insert:
            self._insert(field)
        return field, pos, insert

    def _decode(self, data: bytes) -> tuple[bool, DecodedBlock]:
        headers: Headers = []
        total = 0
        changed = False
        pos = 0
        end = len(data)
        max_decoded = self._max_decoded
        one_field = self._one_field
        while pos < end:
            field, pos, table_changed = one_field(data, pos, not headers)
            changed = changed or table_changed
            if field is None:
                continue
            headers.append(field)
            total += len(field[0]) + len(field[1]) + 32
            if total > max_decoded:
                raise HeaderBlockTooLarge(f"header block decodes to more than {max_decoded} bytes")
        return changed, DecodedBlock(headers, total)

    # -- a block in several frames (HEADERS + CONTINUATION) ------------------------------------
    def begin_block(self, keep_limit: int) -> None:
        """Start a block that arrives in fragments (``feed``, then ``end_block``). Fields are
        kept while the list stays within ``keep_limit`` (SETTINGS_MAX_HEADER_LIST_SIZE); past
        it they are only counted, and a value longer than ``keep_limit`` is skipped as it
        arrives, never buffered, so 1 MiB of metadata costs no memory and the HPACK table
        stays in step (the caller answers the stream RESOURCE_EXHAUSTED)."""
        self._keep_limit = keep_limit
        self._pending = b""
        self._skip = 0
        self._skipped: tuple[str, int, bool] | None = None
        self._fields: Headers = []
        self._total = 0
        self._seen_field = False

    def feed(self, fragment: bytes) -> None:
        data = self._pending + fragment if self._pending else fragment
        pos = 0
        if self._skip:
            taken = min(self._skip, len(data))
            self._skip -= taken
            pos = taken
            if self._skip:
                self._pending = b""
                return
            self._skipped_done()
        end = len(data)
        while pos < end:
            start = pos
            try:
                field, pos, table_changed = self._one_field(data, pos, not self._seen_field)
            except _Truncated as truncated:
                name = truncated.name
                indexable = (
                    truncated.insert
                    and name is not None
                    and len(name) + truncated.length + 32 <= self._limit
                )
                if name is not None and truncated.length > self._keep_limit and not indexable:
                    # a value no list within the limit can hold: count it, skip its bytes
                    # (one the dynamic table takes is read whole: the table must stay in step)
                    self._skip = truncated.length - (end - truncated.start)
                    self._skipped = (name, truncated.length, truncated.insert)
                    self._pending = b""
                    return
                self._pending = data[start:]
                if len(self._pending) > max(self._keep_limit, self._limit) + 64:
                    raise HeaderBlockTooLarge("a header name larger than the list limit") from None
                return
            if table_changed:
                self._cache.clear()
            if field is not None:
                self._seen_field = True
                self._count(field[0], len(field[1]), field)
        self._pending = b""

    def _skipped_done(self) -> None:
        assert self._skipped is not None
        name, length, insert = self._skipped
        self._skipped = None
        self._seen_field = True
        if insert:  # an entry larger than the table empties it (RFC 7541 4.4)
            if len(name) + length + 32 <= self._limit:
                raise HeaderBlockError("cannot index a value larger than the list limit")
            self._entries.clear()
            self._size = 0
            self._cache.clear()
        self._count(name, length, None)

    def _count(self, name: str, value_length: int, field: tuple[str, str] | None) -> None:
        self._total += len(name) + value_length + 32
        if self._total > self._max_decoded:
            raise HeaderBlockTooLarge(f"header block decodes to more than {self._max_decoded}")
        if field is not None and self._total <= self._keep_limit:
            self._fields.append(field)

    def end_block(self) -> DecodedBlock:
        """The block's fields (all of them when ``size`` is within the keep limit)."""
        if self._pending or self._skip:
            raise HeaderBlockError("header block ends inside a field")
        decoded = DecodedBlock(self._fields, self._total)
        self._fields = []
        return decoded

"""HeaderDecoder's fragment path (a header block in HEADERS + CONTINUATION frames).

Decoding fragment by fragment must give exactly what decoding the joined block gives (fields,
list size, dynamic table afterwards), and a value too large to keep must be skipped as it
arrives: never buffered, counted in the size, and the table kept in step.
"""

from __future__ import annotations

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcfw.transport.hpack_decoder import HeaderBlockError, HeaderBlockTooLarge, HeaderDecoder

NAMES = st.sampled_from(
    [":path", "content-type", "grpc-timeout", "user-agent", "x-a", "x-bb", "authorization"]
)
VALUES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-_.", max_size=300)
HEADER_LISTS = st.lists(st.tuples(NAMES, VALUES), min_size=1, max_size=12)


def _fragments(block: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(block) + 1) for c in cuts})
    pieces, last = [], 0
    for point in [*points, len(block)]:
        pieces.append(block[last:point])
        last = point
    return pieces


@settings(max_examples=150, deadline=None)
@given(
    lists=st.lists(HEADER_LISTS, min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
    huffman=st.booleans(),
)
def test_fragmented_blocks_decode_like_joined_ones(
    lists: list[list[tuple[str, str]]], cuts: list[int], huffman: bool
) -> None:
    encoder = hpack.Encoder()  # uses the dynamic table, as peers do
    whole = HeaderDecoder(4096, 1 << 20)
    pieces = HeaderDecoder(4096, 1 << 20)
    for headers in lists:
        block = encoder.encode(headers, huffman=huffman)
        expected = whole.decode_block(block)
        pieces.begin_block(16 << 10)
        for fragment in _fragments(block, cuts):
            pieces.feed(fragment)
        got = pieces.end_block()
        assert got.headers == expected.headers == headers
        assert got.size == expected.size
        assert list(pieces._entries) == list(whole._entries)


def test_a_one_mib_value_is_skipped_as_it_arrives_and_the_table_stays_in_step() -> None:
    """Fault: 1 MiB of metadata in one value, with incremental indexing, in 16 KiB frames."""
    encoder = hpack.Encoder()
    decoder = HeaderDecoder(4096, 8 << 20)
    encoder.encode([("x-small", "kept")])  # both tables get an entry first
    decoder.decode_block(hpack.Encoder().encode([("x-small", "kept")]))
    big = [(":path", "/a/b"), ("x-big", "v" * (1 << 20))]
    block = encoder.encode(big, huffman=False)
    decoder.begin_block(16 << 10)
    for start in range(0, len(block), 16384):
        decoder.feed(block[start : start + 16384])
        assert len(decoder._pending) <= (16 << 10) + 64  # nothing large is ever buffered
    decoded = decoder.end_block()
    assert decoded.size == sum(len(n) + len(v) + 32 for n, v in big)
    assert decoded.headers == [(":path", "/a/b")]  # kept while within the limit
    # the encoder's table dropped everything for the huge entry; ours too: the next block
    # (which refers to the encoder's table as it is now) decodes right
    after = [(":path", "/a/b"), ("x-next", "ok")]
    assert decoder.decode_block(encoder.encode(after)).headers == after


def test_a_header_name_larger_than_the_list_limit_is_too_large() -> None:
    block = b"\x00" + bytes([0x7F]) + _varint(40_000 - 127) + b"n" * 100  # literal, huge name
    decoder = HeaderDecoder(4096, 8 << 20)
    decoder.begin_block(16 << 10)
    decoder.feed(block)
    with pytest.raises(HeaderBlockTooLarge):
        decoder.feed(b"n" * (20 << 10))


def test_a_block_that_ends_inside_a_field_is_an_error() -> None:
    block = hpack.Encoder().encode([("x-a", "value")])
    decoder = HeaderDecoder(4096, 1 << 20)
    decoder.begin_block(16 << 10)
    decoder.feed(block[:-2])
    with pytest.raises(HeaderBlockError):
        decoder.end_block()


def test_decoded_size_beyond_the_cap_is_too_large_even_when_skipped() -> None:
    block = hpack.Encoder().encode([("x-big", "v" * (3 << 20))], huffman=False)
    decoder = HeaderDecoder(4096, 2 << 20)
    decoder.begin_block(16 << 10)
    with pytest.raises(HeaderBlockTooLarge):
        for start in range(0, len(block), 16384):
            decoder.feed(block[start : start + 16384])
        decoder.end_block()


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)

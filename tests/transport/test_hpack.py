"""HPACK: rpcfw's stateless encoder against hpack's decoder, and the bounded decoder."""

from __future__ import annotations

import string

import hpack
import pytest
from hpack.hpack import decode_integer, encode_integer
from hpack.table import HeaderTable
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcfw.transport.hpack_codec import (
    HeaderBlockError,
    HeaderBlockTooLarge,
    HeaderDecoder,
    HeaderEncoder,
    _integer,
    header_list_size,
)

Headers = list[tuple[str, str]]

STATIC = [(name.decode(), value.decode()) for name, value in HeaderTable.STATIC_TABLE]
STATIC_NAMES = sorted({name for name, _ in STATIC})

names = st.one_of(
    st.sampled_from(STATIC_NAMES),
    st.text(alphabet=string.ascii_lowercase + string.digits + "-_.", min_size=1, max_size=40),
)
values = st.one_of(
    st.sampled_from(sorted({value for _, value in STATIC})),
    st.text(alphabet=string.printable.strip() + " ", max_size=300),
)
fields = st.one_of(st.sampled_from(STATIC), st.tuples(names, values))


def hpack_decode(block: bytes) -> Headers:
    decoder = hpack.Decoder(max_header_list_size=1 << 22)
    return [(str(name), str(value)) for name, value in decoder.decode(block)]


@settings(max_examples=300, deadline=None)
@given(st.lists(fields, max_size=30))
def test_encoder_output_decodes_to_the_same_list(headers: Headers) -> None:
    encoder = HeaderEncoder()
    block = encoder.encode(headers)
    assert hpack_decode(block) == headers
    assert encoder.encode(headers) == block  # the cached path gives the same bytes
    assert HeaderDecoder(4096, 1 << 22).decode(block) == headers


def test_encoder_never_touches_the_dynamic_table() -> None:
    decoder = hpack.Decoder()
    block = HeaderEncoder().encode([("x-custom", "v"), ("content-type", "application/grpc")])
    decoder.decode(block)
    assert len(decoder.header_table.dynamic_entries) == 0


@pytest.mark.parametrize(
    "value",
    [
        0,
        1,
        14,
        15,
        16,
        30,
        31,
        62,
        126,
        127,
        128,
        129,
        254,
        255,
        256,
        16382,
        16383,
        16384,
        16510,
        16511,
        16512,
        2**21,
        2**31 - 1,
    ],
)
@pytest.mark.parametrize("prefix_bits", [4, 5, 6, 7, 8])
def test_integer_encoding_at_prefix_boundaries(value: int, prefix_bits: int) -> None:
    encoded = _integer(value, prefix_bits, 0)
    assert encoded == bytes(encode_integer(value, prefix_bits))
    assert decode_integer(encoded, prefix_bits) == (value, len(encoded))


def test_integer_encoding_rfc7541_examples() -> None:
    assert _integer(10, 5, 0) == b"\x0a"  # C.1.1
    assert _integer(1337, 5, 0) == b"\x1f\x9a\x0a"  # C.1.2
    assert _integer(42, 8, 0) == b"\x2a"  # C.1.3
    assert _integer(5, 7, 0x80) == b"\x85"  # the pattern bits are kept


@pytest.mark.parametrize("length", [0, 1, 126, 127, 128, 255, 16383, 16384, 16511, 16512, 70000])
def test_string_lengths_at_prefix_boundaries(length: int) -> None:
    headers = [
        ("x-" + "n" * length, "v" * length),  # literal name and value: 7-bit length prefix
        ("user-agent", "u" * length),  # indexed name (58), literal value
        ("content-type", "c" * length),
    ]
    block = HeaderEncoder().encode(headers)
    assert hpack_decode(block) == headers


@pytest.mark.parametrize(
    "name", [":status", "accept-charset", "accept-encoding", "accept-language", "www-authenticate"]
)
def test_indexed_name_at_the_4_bit_prefix_boundary(name: str) -> None:
    index = next(i for i, (static_name, _) in enumerate(STATIC, start=1) if static_name == name)
    headers = [(name, "not-in-the-static-table")]
    block = HeaderEncoder().encode(headers)
    prefix = bytes(encode_integer(index, 4))  # 0000xxxx: literal without indexing
    assert len(prefix) == (1 if index < 15 else 2)
    assert block[: len(prefix)] == prefix
    assert hpack_decode(block) == headers


def test_encoder_cache_overflow_keeps_encoding_correct() -> None:
    encoder = HeaderEncoder()
    for i in range(5000):
        encoder.encode([("x-key", f"value-{i}")])
    headers = [("x-key", "value-0"), ("x-key", "value-4999"), (":status", "200")]
    assert hpack_decode(encoder.encode(headers)) == headers


def hpack_bomb(references: int) -> bytes:
    """One 4 KiB entry inserted into the dynamic table, then referenced ``references`` times."""
    entry = hpack.Encoder().encode([("x-bomb", "a" * 4000)])  # incremental indexing: index 62
    return bytes(entry) + b"\xbe" * references


def test_decoder_stops_an_hpack_bomb() -> None:
    block = hpack_bomb(600)
    assert len(block) < 5000
    with pytest.raises(HeaderBlockTooLarge):
        HeaderDecoder(4096, 2 << 20).decode(block)


def test_decoder_accepts_a_block_just_under_its_cap() -> None:
    block = hpack_bomb(3)
    headers = HeaderDecoder(4096, 4 * (6 + 4000 + 32)).decode(block)
    assert headers == [("x-bomb", "a" * 4000)] * 4
    with pytest.raises(HeaderBlockTooLarge):
        HeaderDecoder(4096, 4 * (6 + 4000 + 32) - 1).decode(block)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x80",  # index 0
        b"\xff\xff\xff\x7f",  # index far beyond both tables
        b"\xbe",  # dynamic index 62 with an empty dynamic table
        b"\x00\x05ab",  # string shorter than its length
        b"\x40",  # literal with no name
        b"\x00\x81\xff\x01a",  # invalid Huffman code
        b"\x3f\xe1\x1f",  # table size update to 4096, above the 1024 we advertise
    ],
)
def test_decoder_raises_header_block_error_for_garbage(garbage: bytes) -> None:
    with pytest.raises(HeaderBlockError):
        HeaderDecoder(1024, 1 << 16).decode(garbage)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decoder_raises_nothing_but_header_block_error(block: bytes) -> None:
    try:
        headers = HeaderDecoder(4096, 1 << 16).decode(block)
    except HeaderBlockError:
        return
    assert all(isinstance(n, str) and isinstance(v, str) for n, v in headers)


def test_decoder_returns_latin1_byte_for_byte() -> None:
    block = bytes(hpack.Encoder().encode([(b"x-bin", b"\xff\x00\x80caf\xc3\xa9")]))
    assert HeaderDecoder(4096, 1 << 16).decode(block) == [("x-bin", "\xff\x00\x80caf\xc3\xa9")]


def test_header_list_size_counts_32_per_field() -> None:
    assert header_list_size([("ab", "cde"), ("", "")]) == 2 + 3 + 32 + 32


small_fields = st.one_of(
    st.sampled_from(STATIC),
    st.tuples(
        st.sampled_from(["x-a", "x-b", "grpc-timeout", ":path", "user-agent"]),
        st.sampled_from(["", "1", "1S", "/svc/M", "v" * 100, "w" * 1500]),
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(small_fields, max_size=8),
            st.booleans(),  # Huffman
            st.booleans(),  # never indexed
            st.sampled_from([None, None, None, 0, 256, 4096]),  # table size change first
        ),
        max_size=12,
    )
)
def test_decoder_follows_hpack_encoder_across_blocks(
    blocks: list[tuple[Headers, bool, bool, int | None]],
) -> None:
    """The decoder's dynamic table (and its block cache) stays in step with a real encoder:
    indexing, eviction, table size updates, Huffman, never-indexed fields, repeated blocks."""
    encoder = hpack.Encoder()
    decoder = HeaderDecoder(4096, 1 << 20)
    for headers, huffman, never, table_size in blocks + blocks:  # each block twice: cached
        if table_size is not None:
            encoder.header_table_size = table_size
        fields = [hpack.NeverIndexedHeaderTuple(n, v) for n, v in headers] if never else headers
        block = bytes(encoder.encode(fields, huffman=huffman))
        decoded = decoder.decode_block(block)  # once: a block may change the table
        assert decoded.headers == headers
        assert decoded.size == header_list_size(headers)


def test_decoder_block_cache_is_invalidated_by_a_table_change() -> None:
    encoder = hpack.Encoder()
    decoder = HeaderDecoder(4096, 1 << 20)
    assert decoder.decode(bytes(encoder.encode([("x-a", "1")]))) == [("x-a", "1")]
    indexed = bytes(encoder.encode([("x-a", "1")]))  # b"\xbe": dynamic index 62
    assert decoder.decode(indexed) == [("x-a", "1")]
    assert decoder.decode(bytes(encoder.encode([("x-b", "2")]))) == [("x-b", "2")]
    assert decoder.decode(indexed) == [("x-b", "2")]  # index 62 is now the newer entry


def test_decoder_table_size_update_after_a_field_is_an_error() -> None:
    with pytest.raises(HeaderBlockError):
        HeaderDecoder(4096, 1 << 16).decode(b"\x82\x20")

"""Pins for the parts of dependencies rpcfw's runtime uses that are not their documented API.

rpcfw's transport uses two pieces of hpack beyond its Encoder/Decoder classes: the static table
(HeaderTable.STATIC_TABLE) and the Huffman decoder (huffman_table.decode_huffman). If an hpack
release moves or changes them, these tests fail before the transport does.
"""

from __future__ import annotations

from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable


def test_hpack_static_table_is_rfc7541_appendix_a() -> None:
    table = HeaderTable.STATIC_TABLE
    assert len(table) == 61
    assert table[0] == (b":authority", b"")
    assert table[1] == (b":method", b"GET")
    assert table[7] == (b":status", b"200")
    assert table[30] == (b"content-type", b"")
    assert table[60] == (b"www-authenticate", b"")


def test_hpack_decode_huffman_round_trips_hpacks_encoder() -> None:
    encoder = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
    for text in (b"application/grpc", b"grpc-python-rpcfw/0.1.0", b"", b"\x00\xff~"):
        assert decode_huffman(encoder.encode(text)) == text

"""Message compression (pure): framing round trips, the receive limit on the decompressed
size (a zip bomb is refused without inflating it), corrupt and truncated input, names."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcfw import Compression, MessageTooLargeError, RpcError, Status
from rpcfw._wire import frame_message, message_payload, parse_message_prefix
from rpcfw.compression import accepts, compress, decompress, encoding_name, is_supported

MiB = 1024 * 1024


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@given(payload=st.binary(max_size=4096))
def test_framed_compressed_message_round_trips(encoding: str, payload: bytes) -> None:
    framed = frame_message(payload, None, encoding)
    assert framed[0] == (1 if len(compress(encoding, payload)) < len(payload) else 0)
    length = parse_message_prefix(framed[:5], 10_000)
    assert message_payload(framed[0], framed[5 : 5 + length], encoding, 10_000) == payload


def test_message_that_compression_would_grow_is_sent_as_it_is() -> None:
    assert frame_message(b"ab", None, "gzip") == b"\x00\x00\x00\x00\x02ab"
    assert frame_message(b"a" * 1000, None, "gzip")[0] == 1


def test_gzip_is_the_gzip_container_and_deflate_the_zlib_one() -> None:
    """What grpc-go, C-core and Java send for these names."""
    assert zlib.decompress(compress("gzip", b"x" * 100), 31) == b"x" * 100
    assert zlib.decompress(compress("deflate", b"x" * 100)) == b"x" * 100


def test_zip_bomb_is_refused_at_the_limit_without_inflating_it() -> None:
    """Fault: 64 MiB of zeros compressed to ~64 KiB, received with a 4 MiB limit."""
    bomb = compress("gzip", bytes(64 * MiB))
    assert len(bomb) < 100_000
    with pytest.raises(MessageTooLargeError) as info:
        decompress("gzip", bomb, 4 * MiB)
    assert info.value.status is Status.RESOURCE_EXHAUSTED
    assert info.value.size == 4 * MiB + 1  # it stopped one byte past the limit


def test_send_limit_applies_to_the_uncompressed_size() -> None:
    with pytest.raises(MessageTooLargeError):
        frame_message(bytes(11), 10, "gzip")  # compresses to fewer than 10 bytes, still too big


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"not gzip at all", "corrupt"), (compress("gzip", b"hello" * 100)[:20], "truncated")],
)
def test_corrupt_or_truncated_compressed_message_is_internal(data: bytes, reason: str) -> None:
    with pytest.raises(RpcError) as info:
        decompress("gzip", data, MiB)
    assert info.value.status is Status.INTERNAL and reason in str(info.value)


@given(data=st.binary(max_size=512))
def test_any_bytes_decompress_or_fail_with_an_rpc_error(data: bytes) -> None:
    for encoding in ("gzip", "deflate"):
        try:
            out = decompress(encoding, data, 4096)
        except RpcError as exc:  # nothing else escapes (no zlib.error, no MemoryError)
            assert exc.status in (Status.INTERNAL, Status.RESOURCE_EXHAUSTED)
        else:
            assert len(out) <= 4096


def test_compressed_flag_without_an_encoding_is_internal() -> None:
    with pytest.raises(RpcError) as info:
        message_payload(1, b"abc", None, 100)
    assert info.value.status is Status.INTERNAL and "identity" in str(info.value)


def test_names_and_negotiation() -> None:
    assert encoding_name(Compression.GZIP) == "gzip" and encoding_name("DEFLATE") == "deflate"
    assert encoding_name(None) is None and encoding_name(Compression.NONE) is None
    with pytest.raises(ValueError, match="unsupported compression 'snappy'"):
        encoding_name("snappy")
    assert is_supported(None) and is_supported("identity") and not is_supported("snappy")
    assert accepts("identity, deflate,gzip", "gzip") and not accepts("identity", "gzip")
    assert not accepts(None, "gzip")

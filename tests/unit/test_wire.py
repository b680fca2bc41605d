from __future__ import annotations

import pytest
from h2.errors import ErrorCodes

from rpcfw import MessageTooLargeError, RpcError, Status
from rpcfw._wire import (
    frame_message,
    is_grpc_content_type,
    parse_message_prefix,
    rst_code_to_status,
    status_from_headers,
    status_from_http,
    trailers_for,
)


def test_frame_message_prefix_is_flag_and_big_endian_length() -> None:
    assert frame_message(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert parse_message_prefix(frame_message(b"x" * 300)[:5], 1000) == 300


def test_oversized_send_is_resource_exhausted() -> None:
    with pytest.raises(MessageTooLargeError) as info:
        frame_message(b"x" * 11, max_length=10)
    assert info.value.status is Status.RESOURCE_EXHAUSTED


def test_oversized_receive_prefix_is_resource_exhausted_before_reading_body() -> None:
    with pytest.raises(MessageTooLargeError, match="larger than max"):
        parse_message_prefix(b"\x00" + (5 * 1024 * 1024).to_bytes(4, "big"), 4 * 1024 * 1024)


def test_compressed_flag_is_accepted_by_the_prefix_parser() -> None:
    assert parse_message_prefix(b"\x01\x00\x00\x00\x01", 10) == 1  # decompressed later


@pytest.mark.parametrize("prefix", [b"\x02\x00\x00\x00\x01", b"\x00\x00"])
def test_corrupt_prefix_is_internal(prefix: bytes) -> None:
    with pytest.raises(RpcError) as info:
        parse_message_prefix(prefix, 10)
    assert info.value.status is Status.INTERNAL


def test_status_from_trailers() -> None:
    assert status_from_headers([("grpc-status", "0")]) is None
    error = status_from_headers(
        [("grpc-status", "5"), ("grpc-message", "not%20here%20%F0%9F%8E%89"), ("x-k", "v")]
    )
    assert error is not None and error.status is Status.NOT_FOUND
    assert error.message == "not here \U0001f389"
    assert error.trailing_metadata is not None and error.trailing_metadata.get("x-k") == "v"


@pytest.mark.parametrize(
    ("headers", "message"),
    [([], "missing grpc-status"), ([("grpc-status", "x")], "invalid grpc-status")],
)
def test_missing_or_corrupt_grpc_status_is_unknown(
    headers: list[tuple[str, str]], message: str
) -> None:
    error = status_from_headers(headers)
    assert error is not None and error.status is Status.UNKNOWN and message in (error.message or "")


def test_trailers_for_round_trips_through_status_from_headers() -> None:
    error = status_from_headers(trailers_for(Status.ABORTED, "a b\u00fc", [("k", "v")]))
    assert error is not None and error.status is Status.ABORTED and error.message == "a b\u00fc"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (ErrorCodes.CANCEL, Status.CANCELLED),
        (ErrorCodes.REFUSED_STREAM, Status.UNAVAILABLE),
        (ErrorCodes.ENHANCE_YOUR_CALM, Status.RESOURCE_EXHAUSTED),
        (ErrorCodes.NO_ERROR, Status.INTERNAL),
        (0xFFFF, Status.INTERNAL),
    ],
)
def test_rst_stream_codes_map_to_grpc_statuses(code: int, status: Status) -> None:
    assert rst_code_to_status(code).status is status


@pytest.mark.parametrize(
    ("http", "status"),
    [("404", Status.UNIMPLEMENTED), ("503", Status.UNAVAILABLE), ("418", Status.UNKNOWN)],
)
def test_non_200_http_status_maps_to_grpc_status(http: str, status: Status) -> None:
    assert status_from_http(http).status is status


def test_grpc_content_types() -> None:
    assert is_grpc_content_type("application/grpc")
    assert is_grpc_content_type("application/grpc+proto")
    assert not is_grpc_content_type("application/grpc+json")
    assert not is_grpc_content_type("text/html")
    assert not is_grpc_content_type(None)

"""``RichStatus`` (google.rpc.Status without googleapis-common-protos) against protobuf's own
encoder and decoder, and the ``grpc-status-details-bin`` trailer in ``status_from_headers``.

Faults: negative codes (10-byte varints), unknown fields, truncated and corrupt bytes, a corrupt
base64 trailer, padded and unpadded base64."""

from __future__ import annotations

import base64

import pytest
from google.protobuf import duration_pb2, wrappers_pb2

from rpcfw import Metadata, RichStatus, RpcError, Status
from rpcfw._wire import details_trailer, status_from_headers
from tests.status_proto import StatusProto


def reference(code: int, message: str) -> bytes:
    status = StatusProto(code=code, message=message)
    status.details.add().Pack(duration_pb2.Duration(seconds=7))
    status.details.add().Pack(wrappers_pb2.StringValue(value="why"))
    return bytes(status.SerializeToString())


@pytest.mark.parametrize("code", [0, 3, 16, -1, 2**31 - 1, -(2**31)])
def test_round_trip_matches_protobufs_encoding(code: int) -> None:
    details = [duration_pb2.Duration(seconds=7), wrappers_pb2.StringValue(value="why")]
    built = RichStatus.pack(code, "héllo ✓", details)
    assert built.SerializeToString() == reference(code, "héllo ✓")
    parsed = RichStatus.FromString(reference(code, "héllo ✓"))
    assert (parsed.code, parsed.message, len(parsed.details)) == (code, "héllo ✓", 2)
    assert parsed.unpack(duration_pb2.Duration) == duration_pb2.Duration(seconds=7)
    assert parsed.unpack(wrappers_pb2.StringValue) == wrappers_pb2.StringValue(value="why")
    assert parsed.unpack(wrappers_pb2.BoolValue) is None
    assert parsed == built  # raw bytes are not compared
    assert parsed.raw == reference(code, "héllo ✓")


def test_unknown_fields_are_skipped() -> None:
    extra = b"\x20\x05" + b"\x29" + b"\x00" * 8 + b"\x35" + b"\x00" * 4 + b"\x3a\x02hi"
    parsed = RichStatus.FromString(reference(5, "m") + extra)
    assert (parsed.code, parsed.message, len(parsed.details)) == (5, "m", 2)


@pytest.mark.parametrize(
    "data",
    [
        b"\x08",  # a varint cut short
        b"\x12\x05abc",  # a string longer than what follows
        b"\x1a\x03\xff\xff\xff",  # a detail that is no Any
        b"\x0b",  # a group (wire type 3)
        b"\x12\x02\xff\xfe",  # a message that is no UTF-8
        b"\x08" + b"\xff" * 11,  # an overlong varint
    ],
)
def test_malformed_status_raises_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        RichStatus.FromString(data)


def test_rpc_error_packs_protobuf_messages_and_keeps_a_rich_status() -> None:
    error = RpcError(Status.NOT_FOUND, "gone", details=[duration_pb2.Duration(seconds=1)])
    assert error.code is Status.NOT_FOUND and error.details is not None
    assert (error.details.code, error.details.message) == (5, "gone")
    rich = RichStatus(9, "later")
    assert RpcError(Status.FAILED_PRECONDITION, details=rich).details is rich
    assert RpcError(Status.INTERNAL).details is None
    assert RpcError(Status.INTERNAL).initial_metadata is None


def test_status_from_headers_decodes_the_details_trailer() -> None:
    raw = reference(3, "bad")
    for encoded in (base64.b64encode(raw).decode(), base64.b64encode(raw).decode().rstrip("=")):
        headers = [("grpc-status", "3"), ("grpc-message", "bad"), ("x-k", "v")]
        error = status_from_headers([*headers, ("grpc-status-details-bin", encoded)])
        assert error is not None and error.details is not None
        assert (error.details.code, error.details.message) == (3, "bad")
        assert error.trailing_metadata == Metadata([("x-k", "v")])  # not the grpc-* trailer
    assert details_trailer(RichStatus.FromString(raw)) == (
        "grpc-status-details-bin",
        base64.b64encode(raw).decode().rstrip("="),
    )


def test_a_corrupt_details_trailer_is_dropped_and_the_status_kept() -> None:
    for value in ("!!!", base64.b64encode(b"\x12\x09ab").decode()):
        error = status_from_headers([("grpc-status", "13"), ("grpc-status-details-bin", value)])
        assert error is not None and error.status is Status.INTERNAL and error.details is None

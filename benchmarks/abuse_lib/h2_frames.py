"""HTTP/2 bytes for the raw attacks of ``benchmarks/abuse.py``: protocol constants, gRPC
request headers, HEADERS (+ CONTINUATION) frames and prebuilt HEADERS + RST_STREAM pairs, made
with hyperframe and hpack."""

from __future__ import annotations

from typing import Any

import hpack
from hyperframe.frame import ContinuationFrame, HeadersFrame, RstStreamFrame

__all__ = [
    "CANCEL",
    "CHUNK",
    "EMPTY_MESSAGE",
    "GRPC_CODES",
    "H2_ERRORS",
    "HOST",
    "MAX_FRAME",
    "PATH",
    "PREFACE",
    "h2_error",
    "header_frames",
    "request_headers",
    "reset_pairs",
]

HOST = "127.0.0.1"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PATH = "/echo.v1.Echo/Unary"
CHUNK = 256 * 1024  # bytes handed to one send()
MAX_FRAME = 16384  # the frame size every peer accepts
EMPTY_MESSAGE = b"\x00\x00\x00\x00\x00"  # a gRPC length-prefixed, empty EchoRequest
CANCEL = 8
H2_ERRORS = (
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
)
GRPC_CODES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)


def h2_error(code: int) -> str:
    return H2_ERRORS[code] if 0 <= code < len(H2_ERRORS) else f"0x{code:x}"


def request_headers(port: int, extra: list[tuple[str, str]] | None = None) -> list[Any]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", PATH),
        (":authority", f"{HOST}:{port}"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *(extra or ()),
    ]


def header_frames(stream_id: int, block: bytes, end_stream: bool) -> bytes:
    """HEADERS, plus CONTINUATIONs when the block is larger than one frame."""
    first, rest = block[:MAX_FRAME], block[MAX_FRAME:]
    flags = ["END_STREAM"] if end_stream else []
    if not rest:
        flags.append("END_HEADERS")
    out = [HeadersFrame(stream_id, data=first, flags=flags).serialize()]
    while rest:
        part, rest = rest[:MAX_FRAME], rest[MAX_FRAME:]
        flags = [] if rest else ["END_HEADERS"]
        out.append(ContinuationFrame(stream_id, data=part, flags=flags).serialize())
    return b"".join(out)


def reset_pairs(port: int, count: int) -> tuple[bytes, list[int]]:
    """HEADERS (request open, no END_STREAM) + RST_STREAM(CANCEL) on streams 1, 3, 5, ... of a
    fresh connection, and the offset at which each pair ends. The hpack encoder indexes the
    headers, so after the first pair each header block is a few bytes (as an attacker's is)."""
    encoder = hpack.Encoder()
    headers = request_headers(port)
    parts: list[bytes] = []
    ends: list[int] = []
    total = 0
    for i in range(count):
        stream_id = 2 * i + 1
        pair = (
            HeadersFrame(stream_id, data=encoder.encode(headers), flags=["END_HEADERS"]).serialize()
            + RstStreamFrame(stream_id, error_code=CANCEL).serialize()
        )
        parts.append(pair)
        total += len(pair)
        ends.append(total)
    return b"".join(parts), ends

"""RFC 9113 section 8 header rules: each malformed block is rejected, gRPC blocks are accepted."""

from __future__ import annotations

import pytest

from rpcfw.transport.validation import validate_request, validate_response, validate_trailers

from .peer import REQUEST, RESPONSE, TRAILERS

Headers = list[tuple[str, str]]


def test_grpc_request_response_and_trailers_are_accepted() -> None:
    assert validate_request(REQUEST) is None
    assert validate_response(RESPONSE) is None
    assert validate_trailers(TRAILERS) is None
    assert validate_response([(":status", "200"), *TRAILERS]) is None  # trailers-only
    assert validate_request([*REQUEST, ("grpc-timeout", "1S"), ("x-bin", "AAEC")]) is None


def with_extra(field: tuple[str, str]) -> Headers:
    return [*REQUEST, field]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (with_extra(("X-Upper", "1")), "lowercase"),
        (with_extra(("content-Type", "1")), "lowercase"),
        (with_extra(("connection", "keep-alive")), "connection-specific"),
        (with_extra(("keep-alive", "timeout=5")), "connection-specific"),
        (with_extra(("proxy-connection", "x")), "connection-specific"),
        (with_extra(("transfer-encoding", "chunked")), "connection-specific"),
        (with_extra(("upgrade", "h2c")), "connection-specific"),
        ([(n, "gzip" if n == "te" else v) for n, v in REQUEST], "te header"),
        ([("content-type", "application/grpc"), *REQUEST[:4]], "after a regular header"),
        ([*REQUEST[:4], ("x-a", "1"), (":authority", "b")], "after a regular header"),
        ([(":method", "POST"), *REQUEST], "duplicate pseudo-header :method"),
        ([(":path", "/a"), *REQUEST], "duplicate pseudo-header :path"),
        ([(":status", "200"), *REQUEST], "not allowed here"),
        ([(":protocol", "websocket"), *REQUEST], "not allowed here"),
        ([f for f in REQUEST if f[0] != ":path"], "lacks"),
        ([(n, "" if n == ":path" else v) for n, v in REQUEST], "lacks"),
        ([f for f in REQUEST if f[0] != ":method"], "lacks"),
        ([f for f in REQUEST if f[0] != ":scheme"], "lacks"),
        (with_extra(("x-a", "line\r\nx-injected: 1")), "CR, LF or NUL"),
        (with_extra(("x-a", "cr\rhere")), "CR, LF or NUL"),
        (with_extra(("x-a", "lf\nhere")), "CR, LF or NUL"),
        (with_extra(("x-a", "nul\0here")), "CR, LF or NUL"),
        ([(n, v + "\r\n" if n == ":path" else v) for n, v in REQUEST], "CR, LF or NUL"),
        (with_extra(("", "empty")), "empty header name"),
        (with_extra(("x a", "1")), "invalid character"),
    ],
)
def test_malformed_request_is_rejected(headers: Headers, reason: str) -> None:
    problem = validate_request(headers)
    assert problem is not None
    assert reason in problem


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("content-type", "application/grpc")],
        [("content-type", "application/grpc"), (":status", "200")],
        [(":status", "200"), (":status", "200")],
        [(":status", "200"), (":path", "/")],
        [(":status", "200"), ("Content-Type", "application/grpc")],
        [(":status", "200"), ("connection", "close")],
        [(":status", "200"), ("grpc-message", "a\nb")],
    ],
)
def test_malformed_response_is_rejected(headers: Headers) -> None:
    assert validate_response(headers) is not None


@pytest.mark.parametrize(
    "headers",
    [
        [(":status", "200"), ("grpc-status", "0")],
        [("grpc-status", "0"), (":path", "/")],
        [("Grpc-Status", "0")],
        [("grpc-status", "0"), ("transfer-encoding", "chunked")],
        [("grpc-status", "0"), ("grpc-message", "\0")],
    ],
)
def test_malformed_trailers_are_rejected(headers: Headers) -> None:
    assert validate_trailers(headers) is not None

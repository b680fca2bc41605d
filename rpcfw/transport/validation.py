"""Inbound header rules of RFC 9113 section 8 (a malformed message is a stream error).

Checked on every header block rpcfw receives: names are lowercase and carry no connection-
specific fields; pseudo-header fields come first, only the ones the block may have, each once;
values have no CR, LF or NUL. Requests need :method, :scheme and a non-empty :path; responses
need :status; trailers have no pseudo-header fields.
"""

from __future__ import annotations

__all__ = ["validate_request", "validate_response", "validate_trailers"]

Headers = list[tuple[str, str]]

_CONNECTION_SPECIFIC = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
)
_REQUEST_PSEUDO = frozenset({":method", ":scheme", ":path", ":authority"})
_RESPONSE_PSEUDO = frozenset({":status"})


def _check_fields(headers: Headers, allowed_pseudo: frozenset[str]) -> str | None:
    """The shared rules; returns what is wrong, or None."""
    seen_regular = False
    seen_pseudo: set[str] = set()
    for name, value in headers:
        if not name:
            return "empty header name"
        if name[0] == ":":
            if seen_regular:
                return f"pseudo-header {name} after a regular header"
            if name not in allowed_pseudo:
                return f"pseudo-header {name} not allowed here"
            if name in seen_pseudo:
                return f"duplicate pseudo-header {name}"
            seen_pseudo.add(name)
        else:
            seen_regular = True
            if not name.islower() and name.lower() != name:
                return f"header name {name!r} is not lowercase"
            if name in _CONNECTION_SPECIFIC:
                return f"connection-specific header {name!r}"
            if name == "te" and value != "trailers":
                return f"te header {value!r} (only 'trailers' is allowed)"
        if "\r" in value or "\n" in value or "\0" in value:
            return f"header {name!r} has a CR, LF or NUL in its value"
        if " " in name or "\r" in name or "\n" in name or "\0" in name:
            return f"invalid character in header name {name!r}"
    return None


def validate_request(headers: Headers) -> str | None:
    """What makes this request header block malformed, or None if it is well-formed."""
    problem = _check_fields(headers, _REQUEST_PSEUDO)
    if problem is not None:
        return problem
    method = scheme = path = None
    for name, value in headers:
        if name[0] != ":":
            break
        if name == ":method":
            method = value
        elif name == ":scheme":
            scheme = value
        elif name == ":path":
            path = value
    if not method or not scheme or not path:
        return "request lacks :method, :scheme or :path"
    return None


def validate_response(headers: Headers) -> str | None:
    """What makes this response header block malformed, or None."""
    problem = _check_fields(headers, _RESPONSE_PSEUDO)
    if problem is not None:
        return problem
    if not headers or headers[0][0] != ":status":
        return "response lacks :status"
    return None


def validate_trailers(headers: Headers) -> str | None:
    """What makes this trailer block malformed, or None."""
    return _check_fields(headers, frozenset())

"""What a client call's outcome means for the channel: connection failures (retried
transparently, counted against the connection) and endpoint failures (outlier detection)."""

from __future__ import annotations

from .._status import Status
from ..errors import RpcError
from ..transport import ConnectionLostError, StreamResetError, TransportError

__all__ = [
    "DEADLINE_EXCEEDED",
    "STREAM_ERRORS",
    "is_connection_failure",
    "is_endpoint_failure",
]

DEADLINE_EXCEEDED = "deadline exceeded"
#: what a stream raises once it ended abnormally (the call then reports why)
STREAM_ERRORS = (StreamResetError, ConnectionLostError, TransportError)


def is_connection_failure(error: BaseException | None) -> bool:
    """UNAVAILABLE that rpcfw saw on the connection (lost, refused), not a server's status."""
    return (
        isinstance(error, RpcError)
        and error.status is Status.UNAVAILABLE
        and error.trailing_metadata is None
    )


def is_endpoint_failure(error: BaseException | None) -> bool:
    """The call counts as a failure of its endpoint for outlier detection: it ended
    UNAVAILABLE or DEADLINE_EXCEEDED (any other status means the endpoint answered)."""
    return isinstance(error, RpcError) and (
        error.status is Status.UNAVAILABLE or error.status is Status.DEADLINE_EXCEEDED
    )

"""The rpcfw error tree.

Every failed call raises :class:`RpcError` (or a subclass) carrying a gRPC :class:`Status`.
Server handlers raise it (or call ``context.abort``) to end a call with a status.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from google.protobuf.message import Message as ProtobufMessage

from ._rich_status import RichStatus
from ._status import Status

if TYPE_CHECKING:
    from .metadata import Metadata

__all__ = [
    "ChannelClosedError",
    "MessageTooLargeError",
    "RpcError",
    "RpcfwError",
    "StreamRefusedError",
]


class RpcfwError(Exception):
    """Base class of every error rpcfw raises."""


class RpcError(RpcfwError):
    """A call ended with a non-OK gRPC status.

    - ``status`` (alias ``code``): the ``Status``; ``message``: the status message (grpcio's
      ``details()``), or None
    - ``details``: the rich status (google.rpc.Status from ``grpc-status-details-bin``) as a
      ``RichStatus``, or None; a handler raising ``RpcError(..., details=[...])`` (or calling
      ``context.abort(..., details=[...])``) sends it, protobuf messages packed into ``Any``
    - ``initial_metadata`` / ``trailing_metadata``: the server's response metadata and
      trailing metadata as far as the call received them (None when nothing was received)
    """

    def __init__(
        self,
        status: Status,
        message: str | None = None,
        *,
        details: RichStatus | Iterable[ProtobufMessage] | None = None,
        trailing_metadata: Metadata | None = None,
        initial_metadata: Metadata | None = None,
    ) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        if details is not None and not isinstance(details, RichStatus):
            details = RichStatus.pack(status.value, message or "", details)
        self.details: RichStatus | None = details
        self.trailing_metadata = trailing_metadata
        self.initial_metadata = initial_metadata

    @property
    def code(self) -> Status:
        """The status (grpcio's ``code()``); the same as ``status``."""
        return self.status

    def __str__(self) -> str:
        if self.message:
            return f"{self.status.name}: {self.message}"
        return self.status.name

    def __repr__(self) -> str:
        return f"RpcError({self.status.name}, {self.message!r})"


class MessageTooLargeError(RpcError):
    """A message exceeded the configured size limit (status RESOURCE_EXHAUSTED)."""

    def __init__(self, size: int, limit: int, direction: str) -> None:
        super().__init__(
            Status.RESOURCE_EXHAUSTED,
            f"{direction} message larger than max ({size} vs. {limit})",
        )
        self.size = size
        self.limit = limit


class ChannelClosedError(RpcError):
    """A call was started on a channel that is closed (status UNAVAILABLE)."""

    def __init__(self) -> None:
        super().__init__(Status.UNAVAILABLE, "channel is closed")


class StreamRefusedError(RpcError):
    """The server refused the stream before processing it (GOAWAY or REFUSED_STREAM).

    The call never reached the application, so the channel retries it transparently once.
    """

    def __init__(self, message: str) -> None:
        super().__init__(Status.UNAVAILABLE, message)

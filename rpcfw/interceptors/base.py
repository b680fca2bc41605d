"""Interceptors: code that runs around every call of a channel or a server, in order.

An interceptor overrides the hooks it needs (all are no-ops here), for all four call kinds:

- ``start``: before the call goes out (client) or before the handler runs (server). It can
  read and change the metadata (client: ``call.metadata``; server: ``context``'s invocation
  metadata, and the response metadata through ``context``), and end the call with a status by
  raising ``rpcfw.RpcError`` (server: ``context.abort(...)``).
- ``on_send`` / ``on_receive``: each message, as it is sent or received.
- ``on_end``: once, with the final status, the error if any, the duration and byte counts.

Interceptors run in the order given for ``start`` and for messages, and in reverse order for
``on_end`` (so the first one is the outermost, as in grpc-go). A hook that raises anything but
an ``RpcError`` from ``start`` is a bug in it: the call fails with INTERNAL (server: UNKNOWN);
exceptions from the other hooks are logged and ignored, they never break a call.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._status import Cardinality, Status
from ..errors import RpcError
from ..metadata import Metadata

if TYPE_CHECKING:
    from ..server import CallContext

__all__ = [
    "SERVER_FAULTS",
    "CallCounters",
    "ClientCallInfo",
    "ClientInterceptor",
    "ServerCallStats",
    "ServerInterceptor",
]

log = logging.getLogger("rpcfw.interceptors")

#: statuses that mean something went wrong on the serving side, as the gRPC conventions count
#: server errors (the others, NOT_FOUND, INVALID_ARGUMENT..., are the client's problem): the
#: access log writes them at WARNING, OpenTelemetry server spans get status ERROR
SERVER_FAULTS = frozenset(
    {
        Status.UNKNOWN,
        Status.DEADLINE_EXCEEDED,
        Status.UNIMPLEMENTED,
        Status.INTERNAL,
        Status.UNAVAILABLE,
        Status.DATA_LOSS,
    }
)


@dataclass(eq=False, kw_only=True)
class CallCounters:
    """Time and traffic of one call, kept for interceptors on both sides."""

    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    messages_sent: int = 0
    messages_received: int = 0
    bytes_sent: int = 0  # serialized message bytes, before compression
    bytes_received: int = 0
    #: free space for interceptors to keep per-call state in (key it by your own name)
    scratch: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Seconds from start to end (to now while running)."""
        return (self.ended if self.ended is not None else time.monotonic()) - self.started


@dataclass(eq=False)
class ClientCallInfo(CallCounters):
    """One client call as interceptors see it (mutable in ``start``)."""

    method: str
    kind: Cardinality
    metadata: Metadata
    #: absolute deadline on the backend's clock, or None
    deadline: float | None
    target: str
    peer: str | None = None  # the endpoint, once picked
    status: Status | None = None  # at on_end
    error: RpcError | None = None  # at on_end, when the status is not OK


@dataclass(eq=False)
class ServerCallStats(CallCounters):
    """What a server interceptor can read of one call besides its ``CallContext``."""


class ClientInterceptor:
    """Base class of channel interceptors (``Channel(..., interceptors=[...])``)."""

    async def start(self, call: ClientCallInfo) -> None:
        """Before the call goes out: change ``call.metadata``, or raise RpcError to end it."""

    def on_send(self, call: ClientCallInfo, message: Any) -> None:
        """A request message is being sent."""

    def on_receive(self, call: ClientCallInfo, message: Any) -> None:
        """A response message arrived."""

    def on_end(self, call: ClientCallInfo) -> None:
        """The call ended: ``call.status``, ``call.error``, ``call.duration``."""


class ServerInterceptor:
    """Base class of server interceptors (``Server(..., interceptors=[...])``)."""

    async def start(self, context: CallContext) -> None:
        """Before the handler runs: read ``context.invocation_metadata``, set response
        metadata, or ``context.abort(status, message)`` to answer without the handler."""

    def on_receive(self, context: CallContext, message: Any) -> None:
        """A request message arrived (decoded)."""

    def on_send(self, context: CallContext, message: Any) -> None:
        """A response message is being sent."""

    def on_end(self, context: CallContext) -> None:
        """The call ended: ``context.status`` and ``context.status_message``; duration and
        message counts in ``context.stats``."""


def status_of(error: BaseException | None, finished: bool) -> tuple[Status, RpcError | None]:
    """The status a call ended with, from how it ended."""
    if isinstance(error, RpcError):
        return error.status, error
    if error is not None or not finished:  # cancelled by the caller, or abandoned
        cancelled = RpcError(Status.CANCELLED, "cancelled by the client")
        return Status.CANCELLED, cancelled
    return Status.OK, None


def safely(hook: Any, *args: Any) -> None:
    """Run a message or end hook; its failure is logged, never raised into the call."""
    try:
        hook(*args)
    except Exception:
        log.exception("interceptor hook %s failed", getattr(hook, "__qualname__", hook))

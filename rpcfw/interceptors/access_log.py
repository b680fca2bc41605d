"""Structured access logs: one line per call, with the fields as ``extra`` on the record.

``AccessLogServer`` / ``AccessLogClient`` log through stdlib ``logging`` (default loggers
``rpcfw.access`` / ``rpcfw.access.client``) at INFO for OK and at WARNING for server-side
errors (INTERNAL, UNKNOWN, DATA_LOSS, UNAVAILABLE...) by default. The message reads
``/pkg.Service/Method OK 1.2 ms peer=10.0.0.7:51234 in=1/12 B out=1/40 B``; the record carries
``rpc_method``, ``rpc_peer``, ``rpc_status`` (name), ``rpc_code`` (number), ``rpc_message``,
``rpc_duration_ms``, ``rpc_messages_in`` / ``rpc_bytes_in``, ``rpc_messages_out`` /
``rpc_bytes_out``, so a JSON formatter can emit them as fields.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .._status import Status
from .base import SERVER_FAULTS, ClientCallInfo, ClientInterceptor, ServerInterceptor

if TYPE_CHECKING:
    from ..server import CallContext

__all__ = ["AccessLogClient", "AccessLogServer"]


def _record(
    logger: logging.Logger,
    method: str,
    peer: str | None,
    status: Status,
    message: str | None,
    duration: float,
    counts: tuple[int, int, int, int],
) -> None:
    messages_in, bytes_in, messages_out, bytes_out = counts
    level = logging.WARNING if status in SERVER_FAULTS else logging.INFO
    if not logger.isEnabledFor(level):
        return
    extra: dict[str, Any] = {
        "rpc_method": method,
        "rpc_peer": peer,
        "rpc_status": status.name,
        "rpc_code": status.value,
        "rpc_message": message,
        "rpc_duration_ms": round(duration * 1000, 3),
        "rpc_messages_in": messages_in,
        "rpc_bytes_in": bytes_in,
        "rpc_messages_out": messages_out,
        "rpc_bytes_out": bytes_out,
    }
    text = "%s %s %.1f ms peer=%s in=%d/%d B out=%d/%d B"
    args: list[object] = [method, status.name, duration * 1000, peer, *counts]
    if message:
        text += " message=%r"
        args.append(message)
    logger.log(level, text, *args, extra=extra)


class AccessLogServer(ServerInterceptor):
    """Server interceptor that logs one line per call through ``logger`` (default ``rpcfw.access``):
    method, status, duration, peer and message counts, also as record fields."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("rpcfw.access")

    def on_end(self, context: CallContext) -> None:
        stats = context.stats
        assert stats is not None
        counts = (
            stats.messages_received,
            stats.bytes_received,
            stats.messages_sent,
            stats.bytes_sent,
        )
        status = context.status or Status.CANCELLED
        _record(
            self.logger, context.method, context.peer, status, context.status_message,
            stats.duration, counts,
        )  # fmt: skip


class AccessLogClient(ClientInterceptor):
    """Client interceptor that logs one line per call through ``logger`` (default
    ``rpcfw.access.client``): method, status, duration, peer and message counts, also as record
    fields."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("rpcfw.access.client")

    def on_end(self, call: ClientCallInfo) -> None:
        counts = (call.messages_received, call.bytes_received, call.messages_sent, call.bytes_sent)
        message = None if call.error is None else call.error.message
        _record(
            self.logger, call.method, call.peer, call.status or Status.CANCELLED, message,
            call.duration, counts,
        )  # fmt: skip

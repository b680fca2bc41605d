"""Serving one request stream: validate headers, run the method, send the status.

UNIMPLEMENTED answers carry a content-type (so every client reads them right), requests over
the size limit get RESOURCE_EXHAUSTED (decided from the 5-byte prefix, before the body is read),
and a unary answer goes out in one socket write. Reads are cancel-safe (see transport.stream).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from .._deadline import current_deadline
from .._guard import Guard
from .._method import ServerMethod
from .._status import Cardinality, Status
from .._wire import (
    GRPC_CONTENT_TYPE,
    details_trailer,
    is_grpc_content_type,
    message_payload_async,
    parse_message_prefix,
    trailers_for,
)
from ..compression import ACCEPT_ENCODING, accepts, is_supported
from ..errors import RpcError
from ..interceptors.base import ServerCallStats, ServerInterceptor, safely
from ..metadata import decode_timeout, encode_metadata
from ..transport import ErrorCode, Stream, StreamResetError, TransportError
from ..transport.stream import ConnectionLostError
from ._context import CallContext, ServedConnection

__all__ = ["DispatchConfig", "handle_request"]

log = logging.getLogger("rpcfw.server")

_STREAM_ERRORS = (StreamResetError, ConnectionLostError, TransportError)


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    methods: Mapping[str, ServerMethod[Any, Any]]
    services: frozenset[str]
    max_receive: int
    max_send: int | None
    compression: str | None = None  # compress responses with it when the client accepts it
    interceptors: tuple[ServerInterceptor, ...] = ()


async def _abort_http(stream: Stream, http_status: str, status: Status, message: str) -> None:
    headers = [(":status", http_status), ("content-type", GRPC_CONTENT_TYPE)]
    stream.send_headers(headers + trailers_for(status, message), end_stream=True)
    await stream.drain()


async def _read_message(stream: Stream, max_receive: int, encoding: str | None) -> bytes | None:
    """The next request message, or None at the end of the request stream. Cancel-safe."""
    if not await stream.fill(5):
        if stream.buffered:
            raise RpcError(Status.INTERNAL, "request stream ended in the middle of a message")
        return None
    prefix = stream.peek(5)
    length = parse_message_prefix(prefix, max_receive)
    if not await stream.fill(5 + length):
        raise RpcError(Status.INTERNAL, "request stream ended in the middle of a message")
    data = stream.take(5 + length, 5)
    if prefix[0] == 0:
        return data
    return await message_payload_async(prefix[0], data, encoding, max_receive)


def _decode(method: ServerMethod[Any, Any], data: bytes) -> Any:
    try:
        return method.spec.decode_request(data)
    except Exception as exc:
        raise RpcError(Status.INTERNAL, f"failed to decode request: {exc}") from None


async def _requests(
    stream: Stream,
    method: ServerMethod[Any, Any],
    max_receive: int,
    encoding: str | None,
    observed: tuple[CallContext, tuple[ServerInterceptor, ...]] | None,
) -> AsyncIterator[Any]:
    while (data := await _read_message(stream, max_receive, encoding)) is not None:
        request = _decode(method, data)
        if observed is not None:
            _received(*observed, request, len(data))
        yield request


def _received(
    context: CallContext, hooks: tuple[ServerInterceptor, ...], message: Any, size: int
) -> None:
    stats = context.stats
    assert stats is not None
    stats.messages_received += 1
    stats.bytes_received += size
    for hook in hooks:
        safely(hook.on_receive, context, message)


def _sent(
    context: CallContext, hooks: tuple[ServerInterceptor, ...], message: Any, size: int
) -> None:
    stats = context.stats
    assert stats is not None
    stats.messages_sent += 1
    stats.bytes_sent += size
    for hook in hooks:
        safely(hook.on_send, context, message)


def _ended(context: CallContext, hooks: tuple[ServerInterceptor, ...]) -> None:
    stats = context.stats
    assert stats is not None
    stats.ended = time.monotonic()
    if context.status is None:  # the client went away (reset, connection lost) first
        context.status = Status.CANCELLED
    for hook in reversed(hooks):
        safely(hook.on_end, context)


def _payload(response: Any, method: ServerMethod[Any, Any]) -> bytes:
    serialize = getattr(response, "SerializeToString", None)
    if serialize is None:
        expected = method.spec.response_type.__name__
        raise RpcError(
            Status.INTERNAL,
            f"{method.spec.path} returned {type(response).__name__}, expected {expected}",
        )
    return serialize()  # type: ignore[no-any-return]


async def _run(
    method: ServerMethod[Any, Any],
    context: CallContext,
    stream: Stream,
    config: DispatchConfig,
    encoding: str | None,
) -> None:
    impl = method.implementation
    kind = method.spec.cardinality
    hooks = config.interceptors
    observed = (context, hooks) if hooks else None
    if hooks:
        context.stats = ServerCallStats()
        for hook in hooks:
            await hook.start(context)  # RpcError (context.abort) answers without the handler
    if not kind.client_streaming:
        data = await _read_message(stream, config.max_receive, encoding)
        if data is None:
            raise RpcError(Status.INTERNAL, "missing request message")
        request = _decode(method, data)
        if observed is not None:
            _received(*observed, request, len(data))
    else:
        request = _requests(stream, method, config.max_receive, encoding, observed)
    try:
        if kind is Cardinality.UNARY_UNARY or kind is Cardinality.STREAM_UNARY:
            response = await impl(request, context)
            payload = _payload(response, method)
            if observed is not None:
                _sent(*observed, response, len(payload))
            await context.send_unary(payload)
            return
        responses = impl(request, context)
        try:
            async for response in responses:
                payload = _payload(response, method)
                if observed is not None:
                    _sent(*observed, response, len(payload))
                await context.send_message(payload)
        finally:
            await _close(responses)  # the handler's finally blocks run now, in this task
        await context.send_status(Status.OK, None)
    finally:
        if kind.client_streaming:
            await _close(request)  # a handler that stopped reading early leaves it open


async def _close(iterator: object) -> None:
    """Close an async generator (a handler's responses, the request stream) that may have been
    left suspended: not closing it leaves it to the garbage collector, which runs its cleanup
    later in another task (asyncio) or reports it as an unraisable error (trio)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


def _unimplemented(config: DispatchConfig, path: str) -> str:
    service = path.lstrip("/").rpartition("/")[0]
    if service not in config.services:
        return f"unknown service {service}"
    return f"unknown method {path.rpartition('/')[2]} for service {service}"


async def handle_request(
    config: DispatchConfig, conn: ServedConnection, stream: Stream, guard: Guard
) -> None:
    context: CallContext | None = None
    token = None
    headers = stream.headers or []
    path = None
    try:
        fields = dict(headers)
        path = fields.get(":path")
        http_method = fields.get(":method")
        content_type = fields.get("content-type")
        timeout = fields.get("grpc-timeout")
        encoding = fields.get("grpc-encoding")
        user_agent = fields.get("user-agent")
        if http_method != "POST":
            await _abort_http(stream, "405", Status.INTERNAL, f"method {http_method} not allowed")
            return
        if not is_grpc_content_type(content_type):
            await _abort_http(
                stream, "415", Status.INTERNAL, f"invalid content-type {content_type!r}"
            )
            return
        method = config.methods.get(path or "")
        if method is None:
            await _abort_http(
                stream, "200", Status.UNIMPLEMENTED, _unimplemented(config, path or "")
            )
            return
        if not is_supported(encoding):
            headers = [(":status", "200"), ("content-type", GRPC_CONTENT_TYPE)]
            message = f"grpc-encoding {encoding} not supported (supported: {ACCEPT_ENCODING})"
            trailers = trailers_for(Status.UNIMPLEMENTED, message)
            trailers.append(("grpc-accept-encoding", ACCEPT_ENCODING))
            stream.send_headers(headers + trailers, end_stream=True)
            await stream.drain()
            return
        compression = config.compression
        if compression is not None and not accepts(fields.get("grpc-accept-encoding"), compression):
            compression = None
        deadline = None
        if timeout is not None:
            try:
                deadline = conn.clock() + decode_timeout(timeout)
            except ValueError:
                await _abort_http(
                    stream, "200", Status.INTERNAL, f"invalid grpc-timeout {timeout!r}"
                )
                return
            guard.set_deadline(deadline, RpcError(Status.DEADLINE_EXCEEDED, "deadline exceeded"))
            token = current_deadline.set(deadline)
        context = CallContext(
            conn,
            stream,
            path or "",
            deadline,
            user_agent,
            config.max_send,
            compression,
            guard,
        )
        with guard:
            await _run(method, context, stream, config, encoding)
    except _STREAM_ERRORS:
        if context is not None:
            context.cancelled = True  # client cancelled or connection lost: nobody to answer
    except RpcError as exc:
        if context is not None:
            trailing = encode_metadata(exc.trailing_metadata) if exc.trailing_metadata else None
            if exc.details is not None:
                trailing = [*(trailing or ()), details_trailer(exc.details)]
            await _finish_with_error(context, exc.status, exc.message, trailing)
    except anyio.get_cancelled_exc_class():
        # the handler's task was cancelled (the server is going away): the client hears
        # UNAVAILABLE if the stream can still carry it, not a bare reset
        if context is not None:
            context.cancelled = True
            if not context.finished and stream.error is None:
                context.status_nowait(Status.UNAVAILABLE, "server is shutting down")
        raise
    except Exception as exc:
        log.exception("error in %s", path)
        if context is not None:
            await _finish_with_error(
                context, Status.UNKNOWN, f"unexpected {type(exc).__name__}: {exc}"
            )
    finally:
        if token is not None:
            current_deadline.reset(token)
        if context is not None and context.stats is not None:
            _ended(context, config.interceptors)
        guard.close()
        if not stream.error and stream.local_closed:
            stream.reset(ErrorCode.NO_ERROR)  # answered before the client half-closed
        stream.release()


async def _finish_with_error(
    context: CallContext,
    status: Status,
    message: str | None,
    trailing: list[tuple[str, str]] | None = None,
) -> None:
    if context.finished or context.cancelled:
        return
    with contextlib.suppress(*_STREAM_ERRORS):  # the stream or connection went away first
        await context.send_status(status, message, trailing)

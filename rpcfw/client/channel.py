"""Channel: the client entry point. Resolves a target to addresses and runs the four call kinds.

This first version connects pick-first over the target's addresses (a static resolver); the
resolver/balancer/picker split slots in behind ``_pick`` without changing the call path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from types import TracebackType
from typing import Any

from grpclib.config import Configuration
from typing_extensions import Unpack

from .._deadline import effective_deadline
from .._method import CallOptions, MethodSpec, ReqT, RespT
from .._status import Status
from .._wire import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH, USER_AGENT
from ..errors import ChannelClosedError, RpcError, StreamRefusedError
from ..metadata import MetadataLike, encode_metadata, encode_timeout
from ._call import DEADLINE_EXCEEDED, ClientCall
from ._connection import ClientConnection
from ._streams import BidiStream, send_all
from ._target import Address, parse_target

__all__ = ["Channel"]

log = logging.getLogger("rpcfw.client")


class _Subchannel:
    """The connection to one address; reconnects on demand."""

    def __init__(self, address: Address, config: Configuration) -> None:
        self.address = address
        self._config = config
        self.connection: ClientConnection | None = None
        self._connecting: asyncio.Future[ClientConnection] | None = None
        self.last_error: BaseException | None = None
        self._old: set[ClientConnection] = set()

    async def get(self) -> ClientConnection:
        conn = self.connection
        if conn is not None and conn.ready:
            return conn
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect())
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> ClientConnection:
        if self.connection is not None and not self.connection.closed:
            self._old.add(self.connection)  # draining: it closes itself when idle
        conn = ClientConnection(self.address.host, self.address.port, self._config)
        try:
            await conn.connect()
        except OSError as exc:
            self.last_error = exc
            raise
        self.connection = conn
        self.last_error = None
        return conn

    def close(self) -> None:
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        for conn in (self.connection, *self._old):
            if conn is not None:
                conn.close()
        self._old.clear()


class Channel:
    """A client channel to ``target`` (``host:port`` or ``static:///h1:p1,h2:p2``).

    Create it anywhere (no IO happens until the first call); close it with ``await
    channel.close()`` or ``async with``.
    """

    def __init__(
        self,
        target: str,
        *,
        max_receive_message_length: int = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
        max_send_message_length: int | None = None,
        wait_for_ready: bool = False,
        user_agent: str | None = None,
    ) -> None:
        self.target = target
        self._target = parse_target(target)
        self._config = Configuration().__for_client__()
        self._subchannels = [_Subchannel(a, self._config) for a in self._target.addresses]
        self._max_recv = max_receive_message_length
        self._max_send = max_send_message_length
        self._wait_for_ready = wait_for_ready
        self._closed = False
        self._base_headers = [
            (":method", "POST"),
            (":scheme", "http"),
            ("", ""),  # :path, filled per call
            (":authority", self._target.authority),
            ("te", "trailers"),
            ("content-type", "application/grpc"),
            ("user-agent", user_agent or USER_AGENT),
        ]

    def __repr__(self) -> str:
        return f"Channel({self.target!r})"

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection; calls still running fail with UNAVAILABLE."""
        if self._closed:
            return
        self._closed = True
        for sub in self._subchannels:
            sub.close()
        await asyncio.sleep(0)

    # -- picking a connection ------------------------------------------------------------
    async def _pick(self, deadline: float | None, wait_for_ready: bool) -> ClientConnection:
        if self._closed:
            raise ChannelClosedError()
        for sub in self._subchannels:  # fast path: a ready connection
            conn = sub.connection
            if conn is not None and conn.ready:
                return conn
        loop = asyncio.get_running_loop()
        delay = 0.05
        while True:
            errors: list[str] = []
            for sub in self._subchannels:
                try:
                    if deadline is None:
                        return await sub.get()
                    async with asyncio.timeout_at(deadline):
                        return await sub.get()
                except TimeoutError:
                    raise RpcError(Status.DEADLINE_EXCEEDED, DEADLINE_EXCEEDED) from None
                except OSError as exc:
                    errors.append(f"{sub.address}: {exc.strerror or exc}")
                if self._closed:
                    raise ChannelClosedError()
            if not wait_for_ready:
                raise RpcError(
                    Status.UNAVAILABLE, "failed to connect to all addresses; " + "; ".join(errors)
                )
            if deadline is not None and loop.time() + delay >= deadline:
                await asyncio.sleep(max(0.0, deadline - loop.time()))
                raise RpcError(Status.DEADLINE_EXCEEDED, DEADLINE_EXCEEDED)
            await asyncio.sleep(delay)
            delay = min(delay * 1.6, 1.0)

    def _headers(
        self, spec: MethodSpec[Any, Any], deadline: float | None, metadata: MetadataLike | None
    ) -> list[tuple[str, str]]:
        headers = self._base_headers.copy()
        headers[2] = (":path", spec.path)
        if deadline is not None:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise RpcError(Status.DEADLINE_EXCEEDED, DEADLINE_EXCEEDED)
            headers.append(("grpc-timeout", encode_timeout(remaining)))
        if metadata:
            headers.extend(encode_metadata(metadata))
        return headers

    async def _open(
        self,
        spec: MethodSpec[ReqT, RespT],
        options: CallOptions,
        first: ReqT | None,
        end: bool,
        deadline: float | None,
    ) -> ClientCall[ReqT, RespT]:
        """Start a call; a stream refused before it reached the server is retried once."""
        wait = options.get("wait_for_ready")
        wait_for_ready = self._wait_for_ready if wait is None else wait
        for attempt in range(2):
            conn = await self._pick(deadline, wait_for_ready)
            headers = self._headers(spec, deadline, options.get("metadata"))
            call = ClientCall(conn, spec, headers, deadline, self._max_recv, self._max_send)
            try:
                await call.start(first, end=end)
                if first is not None and end:  # request fully sent: wait to see it accepted
                    await call.recv_initial_metadata()
                return call
            except StreamRefusedError:
                call.close()
                if attempt:
                    raise
            except BaseException:
                call.close()
                raise
        raise AssertionError("unreachable")

    # -- the four call kinds (what generated stubs call) ---------------------------------
    async def unary_unary(
        self, spec: MethodSpec[ReqT, RespT], request: ReqT, **options: Unpack[CallOptions]
    ) -> RespT:
        deadline = effective_deadline(options.get("timeout"))
        call = await self._open(spec, options, request, True, deadline)
        try:
            return await call.recv_unary()
        finally:
            call.close()

    def unary_stream(
        self, spec: MethodSpec[ReqT, RespT], request: ReqT, **options: Unpack[CallOptions]
    ) -> AsyncIterator[RespT]:
        return self._unary_stream(spec, request, options)

    async def _unary_stream(
        self, spec: MethodSpec[ReqT, RespT], request: ReqT, options: CallOptions
    ) -> AsyncIterator[RespT]:
        deadline = effective_deadline(options.get("timeout"))
        call = await self._open(spec, options, request, True, deadline)
        try:
            while (message := await call.recv()) is not None:
                yield message
            await call.finish()
        finally:
            call.close()

    async def stream_unary(
        self,
        spec: MethodSpec[ReqT, RespT],
        requests: Iterable[ReqT] | AsyncIterable[ReqT],
        **options: Unpack[CallOptions],
    ) -> RespT:
        deadline = effective_deadline(options.get("timeout"))
        call = await self._open(spec, options, None, False, deadline)
        try:
            await send_all(call, requests)
            return await call.recv_unary()
        finally:
            call.close()

    def stream_stream(
        self, spec: MethodSpec[ReqT, RespT], **options: Unpack[CallOptions]
    ) -> BidiStream[ReqT, RespT]:
        deadline = effective_deadline(options.get("timeout"))
        return BidiStream(lambda: self._open(spec, options, None, False, deadline))

    def stream_stream_iter(
        self,
        spec: MethodSpec[ReqT, RespT],
        requests: Iterable[ReqT] | AsyncIterable[ReqT],
        **options: Unpack[CallOptions],
    ) -> AsyncIterator[RespT]:
        return self._stream_stream_iter(spec, requests, options)

    async def _stream_stream_iter(
        self,
        spec: MethodSpec[ReqT, RespT],
        requests: Iterable[ReqT] | AsyncIterable[ReqT],
        options: CallOptions,
    ) -> AsyncIterator[RespT]:
        deadline = effective_deadline(options.get("timeout"))
        call = await self._open(spec, options, None, False, deadline)
        sender = asyncio.ensure_future(send_all(call, requests))
        try:
            while (message := await call.recv()) is not None:
                yield message
            await call.finish()
            await sender
        finally:
            if not sender.done():
                sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
            call.close()

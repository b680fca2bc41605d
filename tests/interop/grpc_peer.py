"""The grpcio side of the interop tests, built without grpc codegen.

``GrpcEcho`` is a grpc.aio servicer with the fault hooks of tests/echo_service.py (``abort:<code>:
<text>``, ``details:<code>:<text>`` with grpc-status-details-bin set as trailing metadata,
``raise``, ``deadline``, ``delay_ms``, ``count``, ``x-*`` metadata echoed as initial and
trailing metadata, cancelled calls recorded in ``.cancelled``, handlers in their delay counted
in ``.delaying``), so one test body can run against
an rpcfw server and a grpcio server. ``GrpcEchoClient`` holds grpc.aio multi-callables for the
four Echo methods. Messages are the protobuf-backend classes of the generated echo module.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import grpc
from google.protobuf import duration_pb2, wrappers_pb2

from ..status_proto import StatusProto

__all__ = [
    "BIDI",
    "CLIENT_STREAM",
    "SERVER_STREAM",
    "SERVICE",
    "UNARY",
    "GrpcEcho",
    "GrpcEchoClient",
]

SERVICE = "echo.v1.Echo"
UNARY = f"/{SERVICE}/Unary"
SERVER_STREAM = f"/{SERVICE}/ServerStream"
CLIENT_STREAM = f"/{SERVICE}/ClientStream"
BIDI = f"/{SERVICE}/Bidi"

STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}
DETAILS = "grpc-status-details-bin"


class GrpcEcho:
    """grpc.aio Echo servicer with the same fault hooks as the rpcfw test service."""

    def __init__(self, mod: ModuleType, server_id: str = "grpcio") -> None:
        self._mod = mod
        self.server_id = server_id
        self.cancelled: list[str] = []
        self.calls = 0
        self.delaying = 0  # handlers in their delay_ms sleep right now

    def handler(self) -> grpc.GenericRpcHandler:
        deserialize, serialize = (
            self._mod.EchoRequest.FromString,
            self._mod.EchoResponse.SerializeToString,
        )
        kinds = {
            "Unary": (grpc.unary_unary_rpc_method_handler, self.unary),
            "ServerStream": (grpc.unary_stream_rpc_method_handler, self.server_stream),
            "ClientStream": (grpc.stream_unary_rpc_method_handler, self.client_stream),
            "Bidi": (grpc.stream_stream_rpc_method_handler, self.bidi),
        }
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                name: make(impl, request_deserializer=deserialize, response_serializer=serialize)
                for name, (make, impl) in kinds.items()
            },
        )

    async def _prepare(self, request: Any, context: Any, method: str, first: bool) -> None:
        echoed = [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-")]
        if echoed and first:
            await context.send_initial_metadata(echoed)
            context.set_trailing_metadata(echoed)
        if request.message.startswith("abort:"):
            _, code, text = request.message.split(":", 2)
            await context.abort(STATUS_CODES[int(code)], text)
        if request.message.startswith("details:"):  # as grpcio-status's abort_with_status
            _, code, text = request.message.split(":", 2)
            status = StatusProto(code=int(code), message=text)
            status.details.add().Pack(duration_pb2.Duration(seconds=7))
            status.details.add().Pack(wrappers_pb2.StringValue(value=text))
            trailing = (*(echoed if first else ()), (DETAILS, status.SerializeToString()))
            context.set_trailing_metadata(trailing)
            await context.abort(STATUS_CODES[int(code)], text)
        if request.message == "raise":
            raise ValueError("boom")
        if request.delay_ms:
            self.delaying += 1
            try:
                await asyncio.sleep(request.delay_ms / 1000)  # the slow handler under test
            except asyncio.CancelledError:
                self.cancelled.append(method)
                raise
            finally:
                self.delaying -= 1

    def _reply(self, request: Any, context: Any, index: int = 0) -> Any:
        message = request.message
        if message == "deadline":
            message = f"{context.time_remaining()}"
        return self._mod.EchoResponse(
            message=message, payload=request.payload, index=index, server_id=self.server_id
        )

    async def unary(self, request: Any, context: Any) -> Any:
        self.calls += 1
        await self._prepare(request, context, UNARY, True)
        return self._reply(request, context)

    async def server_stream(self, request: Any, context: Any) -> AsyncIterator[Any]:
        self.calls += 1
        for index in range(request.count):
            await self._prepare(request, context, SERVER_STREAM, index == 0)
            yield self._reply(request, context, index)

    async def client_stream(self, requests: AsyncIterator[Any], context: Any) -> Any:
        self.calls += 1
        messages, payload = [], b""
        async for request in requests:
            await self._prepare(request, context, CLIENT_STREAM, not messages)
            messages.append(request.message)
            payload += request.payload
        return self._mod.EchoResponse(
            message=",".join(messages),
            payload=payload,
            index=len(messages),
            server_id=self.server_id,
        )

    async def bidi(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        self.calls += 1
        index = 0
        async for request in requests:
            await self._prepare(request, context, BIDI, index == 0)
            yield self._reply(request, context, index)
            index += 1


class GrpcEchoClient:
    """grpc.aio multi-callables for the Echo methods (and for any other path via ``method``)."""

    def __init__(self, channel: grpc.aio.Channel, mod: ModuleType) -> None:
        self.channel = channel
        self._serialize = mod.EchoRequest.SerializeToString
        self._deserialize = mod.EchoResponse.FromString
        self.unary = self.method(UNARY)
        self.server_stream = channel.unary_stream(
            SERVER_STREAM,
            request_serializer=self._serialize,
            response_deserializer=self._deserialize,
        )
        self.client_stream = channel.stream_unary(
            CLIENT_STREAM,
            request_serializer=self._serialize,
            response_deserializer=self._deserialize,
        )
        self.bidi = channel.stream_stream(
            BIDI, request_serializer=self._serialize, response_deserializer=self._deserialize
        )

    def method(self, path: str) -> grpc.aio.UnaryUnaryMultiCallable:
        """A unary multi-callable for ``path`` (Echo messages)."""
        return self.channel.unary_unary(
            path, request_serializer=self._serialize, response_deserializer=self._deserialize
        )

"""The Echo service tests run, with hooks that inject faults on request.

``message`` drives behaviour: ``abort:<code>:<text>`` ends with that status (``details:<code>:
<text>`` too, with a rich status: a Duration of 7 s and a StringValue ``<text>``), ``raise`` raises
ValueError, ``deadline`` answers with the remaining time; ``delay_ms`` sleeps before each reply;
``count`` sets the number of server-stream replies. Invocation metadata whose key starts with
``x-`` is echoed back as initial and trailing metadata. ``delaying`` counts the handlers in their
``delay_ms`` sleep right now (tests wait for it instead of sleeping).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any

import anyio
from google.protobuf import duration_pb2, wrappers_pb2

import rpcfw

__all__ = ["LIVENESS", "echo_metadata_and_abort", "make_echo_service", "wait_until"]

#: seconds: a liveness bound only (a condition that never comes fails the test instead of hanging
#: it); no test asserts on how long anything took
LIVENESS = 10.0


async def wait_until(predicate: Callable[[], object], within: float = LIVENESS) -> None:
    """Poll ``predicate`` until it is truthy, yielding to the event loop between checks (on any
    anyio backend). ``within`` is a liveness bound, not a timing assertion: the test fails
    if the condition has not come after that long."""
    end = anyio.current_time() + within
    while not predicate():
        if anyio.current_time() > end:
            raise AssertionError(f"condition not met within {within}s (liveness bound)")
        await anyio.sleep(0.01)  # the poll's tick: lets the awaited events happen


def echo_metadata_and_abort(request: Any, context: rpcfw.CallContext) -> None:
    """The service's hooks that need no waiting: echo ``x-`` metadata, ``abort:<code>:<text>``."""
    echoed = [(k, v) for k, v in context.invocation_metadata if k.startswith("x-")]
    if echoed and not context.headers_sent:
        context.set_initial_metadata(echoed)
        context.set_trailing_metadata(echoed)
    if request.message.startswith("abort:"):
        _, code, text = request.message.split(":", 2)
        context.abort(rpcfw.Status(int(code)), text)
    if request.message.startswith("details:"):
        _, code, text = request.message.split(":", 2)
        details = [duration_pb2.Duration(seconds=7), wrappers_pb2.StringValue(value=text)]
        context.abort(rpcfw.Status(int(code)), text, details=details)


def make_echo_service(mod: ModuleType, server_id: str) -> Any:
    Request, Response = mod.EchoRequest, mod.EchoResponse

    class EchoService(mod.EchoBase):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            self.server_id = server_id
            self.cancelled: list[str] = []
            self.calls = 0
            self.delaying = 0  # handlers in their delay_ms sleep right now

        async def _prepare(self, request: Any, context: rpcfw.CallContext) -> None:
            echo_metadata_and_abort(request, context)
            if request.message == "raise":
                raise ValueError("boom")
            if request.delay_ms:
                self.delaying += 1
                try:
                    await asyncio.sleep(request.delay_ms / 1000)  # the slow handler under test
                except asyncio.CancelledError:
                    self.cancelled.append(context.method)
                    raise
                finally:
                    self.delaying -= 1

        def _reply(self, request: Any, context: rpcfw.CallContext, index: int = 0) -> Any:
            message = request.message
            if message == "deadline":
                message = f"{context.time_remaining()}"
            return Response(
                message=message, payload=request.payload, index=index, server_id=self.server_id
            )

        async def unary(self, request: Any, context: rpcfw.CallContext) -> Any:
            self.calls += 1
            await self._prepare(request, context)
            return self._reply(request, context)

        async def server_stream(
            self, request: Any, context: rpcfw.CallContext
        ) -> AsyncIterator[Any]:
            self.calls += 1
            for index in range(request.count):
                await self._prepare(request, context)
                yield self._reply(request, context, index)

        async def client_stream(
            self, requests: AsyncIterator[Any], context: rpcfw.CallContext
        ) -> Any:
            self.calls += 1
            messages, payload = [], b""
            async for request in requests:
                await self._prepare(request, context)
                messages.append(request.message)
                payload += request.payload
            return Response(
                message=",".join(messages),
                payload=payload,
                index=len(messages),
                server_id=self.server_id,
            )

        async def bidi(
            self, requests: AsyncIterator[Any], context: rpcfw.CallContext
        ) -> AsyncIterator[Any]:
            self.calls += 1
            index = 0
            async for request in requests:
                await self._prepare(request, context)
                yield self._reply(request, context, index)
                index += 1

    _ = Request
    return EchoService()

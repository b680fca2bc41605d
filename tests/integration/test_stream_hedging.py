"""Hedging of client-streaming and bidi calls (gRFC A6), against a scripted rpcfw server.

The server takes one script step per attempt and records, per attempt, the
``grpc-previous-rpc-attempts`` it carried, the request messages it read, and whether its
handler was cancelled; the tests wait on those records (never on time) and check counts and
order. A hedging delay only lets the next attempt start: what a test waits for is a record.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import anyio
import pytest

import rpcfw
from rpcfw import Status
from tests.echo_service import wait_until
from tests.integration.test_retries import PREVIOUS, PUSHBACK, hedging_config
from tests.integration.test_stream_retries import idempotent, requests

UNAVAILABLE = ("fail", Status.UNAVAILABLE, None)


def make_hedged_service(mod: ModuleType) -> Any:
    Response = mod.EchoResponse

    class Hedged(mod.EchoBase):  # type: ignore[misc,name-defined]
        """One script step per attempt (client streams and bidi): "ok" (client stream: reads
        every request, answers with them joined; bidi: echoes each); "silent" (reads every
        request, never answers: waits until cancelled); ``("fail", status, pushback or
        None)``: fails before reading anything; ``("fail_at_end", status, after)``: reads
        every request, waits until ``after`` attempts have ended, then fails."""

        def __init__(self) -> None:
            self.script: list[Any] = []
            self.previous: list[str | None] = []
            self.received: list[list[str]] = []  # per attempt: the requests it read
            self.cancelled: list[int] = []  # the attempts (1-based) whose handler was cancelled
            self.ended = 0  # attempts whose handler has ended

        def _attempt(self, context: rpcfw.CallContext) -> tuple[int, Any]:
            value = context.invocation_metadata.get(PREVIOUS)
            self.previous.append(None if value is None else str(value))
            self.received.append([])
            number = len(self.previous)
            return number, self.script.pop(0) if self.script else "ok"

        async def _run(
            self, number: int, step: Any, requests: AsyncIterator[Any], context: Any
        ) -> list[str]:
            """The common part: the failure steps, reading the requests, the silence."""
            seen = self.received[number - 1]
            if isinstance(step, tuple) and step[0] == "fail":
                _, status, pushback = step
                if pushback is not None:
                    context.set_trailing_metadata([(PUSHBACK, pushback)])
                context.abort(status, "scripted failure")
            async for request in requests:
                seen.append(request.message)
            if step == "silent":
                await anyio.sleep(30)  # the attempt that never answers: until cancelled
            if isinstance(step, tuple) and step[0] == "fail_at_end":
                await wait_until(lambda: self.ended >= step[2])
                context.abort(step[1], "scripted failure after reading")
            return seen

        async def unary(self, request: Any, context: Any) -> Any:
            context.abort(Status.UNIMPLEMENTED, "not scripted")

        async def server_stream(self, request: Any, context: Any) -> AsyncIterator[Any]:
            context.abort(Status.UNIMPLEMENTED, "not scripted")
            yield  # pragma: no cover

        async def client_stream(self, requests: AsyncIterator[Any], context: Any) -> Any:
            number, step = self._attempt(context)
            try:
                seen = await self._run(number, step, requests, context)
            except anyio.get_cancelled_exc_class():
                self.cancelled.append(number)
                raise
            finally:
                self.ended += 1
            return Response(message=",".join(seen), index=len(seen), server_id=str(number))

        async def bidi(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
            number, step = self._attempt(context)
            try:
                if step != "ok":
                    await self._run(number, step, requests, context)
                    return
                seen = self.received[number - 1]
                async for request in requests:
                    seen.append(request.message)
                    yield Response(message=request.message, index=len(seen), server_id=str(number))
            except anyio.get_cancelled_exc_class():
                self.cancelled.append(number)
                raise
            finally:
                self.ended += 1

    return Hedged()


@pytest.fixture
async def hedged(echo_pb: ModuleType) -> AsyncIterator[tuple[Any, rpcfw.Server]]:
    service = make_hedged_service(echo_pb)
    server = rpcfw.Server([service])
    await server.start("127.0.0.1", 0)
    yield service, server
    await server.stop(grace=1)


# -- client streaming -----------------------------------------------------------------------------
async def test_client_stream_is_hedged_and_every_attempt_gets_every_message(
    echo_pb: ModuleType, hedged: Any
) -> None:
    """Fault: the first attempt reads everything and never answers; the hedge 50 ms later
    answers. The second attempt gets the message sent before it started (replayed) and those
    sent after; the first gets them all too, and is cancelled at the commit."""
    service, server = hedged
    service.script = ["silent", "ok"]
    spec = idempotent(echo_pb.ECHO_CLIENT_STREAM)
    channel = rpcfw.Channel(server.address, service_config=hedging_config("0.05s"))
    async with channel, channel.client_stream_call(spec, timeout=10) as call:
        await call.send(echo_pb.EchoRequest(message="a"))
        await wait_until(lambda: service.received == [["a"], ["a"]])  # the hedge has started
        await call.send(echo_pb.EchoRequest(message="b"))
        await call.send(echo_pb.EchoRequest(message="c"))
        await wait_until(lambda: service.received == [["a", "b", "c"]] * 2)
        reply = await call.response()
        assert call.status is Status.OK and call.peer == server.address
        await wait_until(lambda: service.cancelled == [1])
    assert reply.message == "a,b,c" and reply.server_id == "2"
    assert service.previous == [None, "1"]
    assert channel._retry_buffer.used == 0  # released at the commit


async def test_client_stream_stub_is_hedged_with_requests_sent_after_the_hedge_started(
    echo_pb: ModuleType, hedged: Any
) -> None:
    """The same fault through ``stream_unary``: the request iterator yields its last message
    only once the second attempt has started."""
    service, server = hedged
    service.script = ["silent", "ok"]
    spec = idempotent(echo_pb.ECHO_CLIENT_STREAM)

    async def messages() -> AsyncIterator[Any]:
        yield echo_pb.EchoRequest(message="a")
        await wait_until(lambda: len(service.received) == 2)
        yield echo_pb.EchoRequest(message="b")

    async with rpcfw.Channel(server.address, service_config=hedging_config("0.05s")) as channel:
        reply = await channel.stream_unary(spec, messages(), timeout=10)
        await wait_until(lambda: service.cancelled == [1])
    assert reply.message == "a,b" and reply.server_id == "2"
    assert service.received == [["a", "b"], ["a", "b"]]


async def test_a_non_fatal_status_starts_the_next_attempt_at_once(
    echo_pb: ModuleType, hedged: Any
) -> None:
    """Fault: UNAVAILABLE (non-fatal) on the first attempt. The hedging delay is 100 s, so only
    the failure lets the second attempt start within the call's 20 s."""
    service, server = hedged
    service.script = [UNAVAILABLE, "ok"]
    spec = idempotent(echo_pb.ECHO_CLIENT_STREAM)
    async with rpcfw.Channel(server.address, service_config=hedging_config("100s")) as channel:
        reply = await channel.stream_unary(spec, requests(echo_pb, "a", "b"), timeout=20)
    assert reply.message == "a,b" and reply.server_id == "2"
    assert service.previous == [None, "1"]


async def test_a_negative_pushback_stops_hedging(echo_pb: ModuleType, hedged: Any) -> None:
    """Fault: UNAVAILABLE with a -1 pushback on the first attempt (100 s hedging delay): no
    other attempt, the call ends with that failure."""
    service, server = hedged
    service.script = [("fail", Status.UNAVAILABLE, "-1"), "ok"]
    spec = idempotent(echo_pb.ECHO_CLIENT_STREAM)
    async with rpcfw.Channel(server.address, service_config=hedging_config("100s", 3)) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await channel.stream_unary(spec, requests(echo_pb, "a"), timeout=10)
    assert info.value.status is Status.UNAVAILABLE and service.previous == [None]


async def test_a_valid_pushback_delays_the_next_attempt(echo_pb: ModuleType, hedged: Any) -> None:
    """Fault: UNAVAILABLE with a 100 s pushback on the first attempt (which would otherwise
    start the next at once): no second attempt before the call's 0.5 s deadline; the call
    ends with that failure."""
    service, server = hedged
    service.script = [("fail", Status.UNAVAILABLE, "100000"), "ok"]
    spec = idempotent(echo_pb.ECHO_CLIENT_STREAM)
    async with rpcfw.Channel(server.address, service_config=hedging_config("100s", 3)) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await channel.stream_unary(spec, requests(echo_pb, "a"), timeout=0.5)
    assert info.value.status is Status.UNAVAILABLE and service.previous == [None]


async def test_a_fatal_status_ends_the_call_with_it(echo_pb: ModuleType, hedged: Any) -> None:
    """Fault: the first attempt never answers, the second fails INVALID_ARGUMENT (fatal): the
    call ends with it and the first attempt is cancelled."""
    service, server = hedged
    service.script = ["silent", ("fail", Status.INVALID_ARGUMENT, None)]
    spec = idempotent(echo_pb.ECHO_CLIENT_STREAM)
    async with rpcfw.Channel(server.address, service_config=hedging_config("0.05s")) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await channel.stream_unary(spec, requests(echo_pb, "a"), timeout=10)
        await wait_until(lambda: service.cancelled == [1])
    assert info.value.status is Status.INVALID_ARGUMENT and service.previous == [None, "1"]


async def test_hedging_stops_at_max_attempts(echo_pb: ModuleType, hedged: Any) -> None:
    """Fault: every attempt UNAVAILABLE; maxAttempts 3: three attempts, the last failure."""
    service, server = hedged
    service.script = [UNAVAILABLE] * 10
    spec = idempotent(echo_pb.ECHO_CLIENT_STREAM)
    async with rpcfw.Channel(server.address, service_config=hedging_config("100s", 3)) as ch:
        with pytest.raises(rpcfw.RpcError) as info:
            await ch.stream_unary(spec, requests(echo_pb, "a"), timeout=20)
    assert info.value.status is Status.UNAVAILABLE and service.previous == [None, "1", "2"]


async def test_throttling_stops_new_hedges(echo_pb: ModuleType, hedged: Any) -> None:
    """Fault: every attempt UNAVAILABLE. maxTokens 4: two failures leave 2 tokens (not > 2),
    so the first call makes 2 attempts and the next one only its first."""
    service, server = hedged
    service.script = [UNAVAILABLE] * 10
    config = {**hedging_config("100s", 5), "retryThrottling": {"maxTokens": 4, "tokenRatio": 0.1}}
    spec = idempotent(echo_pb.ECHO_CLIENT_STREAM)
    async with rpcfw.Channel(server.address, service_config=config) as channel:
        for _ in range(2):
            with pytest.raises(rpcfw.RpcError):
                await channel.stream_unary(spec, requests(echo_pb, "a"), timeout=20)
    assert service.previous == [None, "1", None]


async def _buffer_case(echo_pb: ModuleType, limit: int | None) -> tuple[Any, Any, Any]:
    """The fault of the test below, with ``limit`` as the per-call buffer (None: default):
    the reply (None on failure), the call and the service."""
    spec = idempotent(echo_pb.ECHO_CLIENT_STREAM)
    big = requests(echo_pb, "a", "b", "c", payload=b"x" * 100)
    service = make_hedged_service(echo_pb)
    service.script = [UNAVAILABLE, ("fail_at_end", Status.UNAVAILABLE, 1), "ok"]
    server = rpcfw.Server([service])
    await server.start("127.0.0.1", 0)
    options: dict[str, Any] = {} if limit is None else {"per_call_retry_buffer_size": limit}
    channel = rpcfw.Channel(server.address, service_config=hedging_config("100s", 3), **options)
    reply = None
    try:
        async with channel, channel.client_stream_call(spec, timeout=20) as call:
            await call.send(big[0])
            await wait_until(lambda: service.received[1:] == [["a"]])  # the second has it
            await call.send(big[1])
            await call.send(big[2])
            await wait_until(lambda: service.received[1:2] == [["a", "b", "c"]])
            await call.done_writing()
            with contextlib.suppress(rpcfw.RpcError):
                reply = await call.response()
            assert channel._retry_buffer.used == 0
    finally:
        await server.stop(grace=1)
    return reply, call, service


async def test_passing_the_buffer_limit_stops_hedging_and_keeps_the_open_attempt(
    echo_pb: ModuleType,
) -> None:
    """Fault: the first attempt fails UNAVAILABLE at once (the second starts at once; the
    hedging delay is 100 s); the second reads every request, then fails UNAVAILABLE. Its
    second message passes the 150-byte per-call buffer before any attempt answered: hedging
    stops, so no third attempt follows that failure (maxAttempts 3), the open attempt still
    gets every message, and the call ends with its failure. Under the default limits the
    third attempt starts, gets every message replayed, and answers."""
    reply, call, service = await _buffer_case(echo_pb, 150)
    assert reply is None and call.status is Status.UNAVAILABLE
    assert service.previous == [None, "1"]
    reply, call, service = await _buffer_case(echo_pb, None)
    assert reply is not None and reply.message == "a,b,c" and reply.server_id == "3"
    assert service.previous == [None, "1", "2"]
    assert service.received[2] == ["a", "b", "c"]  # replayed to the third


# -- bidi -----------------------------------------------------------------------------------------
async def test_bidi_commits_at_the_first_response_and_sends_to_the_winner_only(
    echo_pb: ModuleType, hedged: Any
) -> None:
    """Fault: the first attempt reads and never answers; the hedge echoes. The first
    response commits the call to the second attempt: the first is cancelled, and what is sent
    afterwards goes to the second only."""
    service, server = hedged
    service.script = ["silent", "ok"]
    spec = idempotent(echo_pb.ECHO_BIDI)
    channel = rpcfw.Channel(server.address, service_config=hedging_config("0.05s"))
    async with channel, channel.stream_stream(spec, timeout=10) as stream:
        await stream.send(echo_pb.EchoRequest(message="a"))
        await wait_until(lambda: service.received[:1] == [["a"]])
        first = await stream.recv()
        await wait_until(lambda: service.cancelled == [1])
        await stream.send(echo_pb.EchoRequest(message="b"))
        await stream.done_writing()
        rest = [reply async for reply in stream]
        assert stream.status is Status.OK
    assert first is not None
    assert [(r.message, r.server_id) for r in [first, *rest]] == [("a", "2"), ("b", "2")]
    assert service.received == [["a"], ["a", "b"]]
    assert service.previous == [None, "1"]


async def test_bidi_stream_iter_is_hedged_after_a_non_fatal_failure(
    echo_pb: ModuleType, hedged: Any
) -> None:
    """Fault: UNAVAILABLE on the first attempt (100 s hedging delay): the second starts at
    once and gets the requests."""
    service, server = hedged
    service.script = [UNAVAILABLE, "ok"]
    spec = idempotent(echo_pb.ECHO_BIDI)
    async with rpcfw.Channel(server.address, service_config=hedging_config("100s")) as channel:
        replies = [r async for r in channel.stream_stream_iter(spec, requests(echo_pb, "a", "b"))]
    assert [(r.message, r.server_id) for r in replies] == [("a", "2"), ("b", "2")]
    assert service.previous == [None, "1"]


async def test_cancel_ends_every_hedged_attempt(echo_pb: ModuleType, hedged: Any) -> None:
    """Fault: both attempts never answer; ``cancel()`` ends the call CANCELLED and both
    handlers are cancelled."""
    service, server = hedged
    service.script = ["silent", "silent"]
    spec = idempotent(echo_pb.ECHO_BIDI)
    channel = rpcfw.Channel(server.address, service_config=hedging_config("0.05s"))
    async with channel, channel.stream_stream(spec, timeout=10) as stream:
        await stream.send(echo_pb.EchoRequest(message="a"))
        await wait_until(lambda: service.received == [["a"], ["a"]])
        assert stream.cancel()
        with pytest.raises(rpcfw.RpcError) as info:
            await stream.recv()
        await wait_until(lambda: sorted(service.cancelled) == [1, 2])
    assert info.value.status is Status.CANCELLED and stream.status is Status.CANCELLED


# -- trio ---------------------------------------------------------------------------------------
def test_stream_hedging_on_trio(echo_pb: ModuleType) -> None:
    """The hedged client stream on the anyio runtime (trio). Fault: the first attempt never
    answers; the second does; the first is cancelled."""

    async def main() -> tuple[str, str, list[list[str]], list[int]]:
        service = make_hedged_service(echo_pb)
        service.script = ["silent", "ok"]
        server = rpcfw.Server([service])
        async with anyio.create_task_group() as group:
            port = await group.start(server.serve, "127.0.0.1", 0)
            with anyio.fail_after(10):  # liveness bound only
                async with rpcfw.Channel(
                    f"127.0.0.1:{port}", service_config=hedging_config("0.05s")
                ) as channel:
                    spec = idempotent(echo_pb.ECHO_CLIENT_STREAM)
                    async with channel.client_stream_call(spec) as call:
                        await call.send(echo_pb.EchoRequest(message="a"))
                        await wait_until(lambda: len(service.received) == 2)
                        await call.send(echo_pb.EchoRequest(message="b"))
                        await wait_until(lambda: service.received == [["a", "b"]] * 2)
                        reply = await call.response()
                    await wait_until(lambda: service.cancelled == [1])
            group.cancel_scope.cancel()
        return reply.message, reply.server_id, service.received, service.cancelled

    assert anyio.run(main, backend="trio") == ("a,b", "2", [["a", "b"]] * 2, [1])

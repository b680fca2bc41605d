"""Retries and hedging of streaming calls and call objects (gRFC A6), against a scripted rpcfw
server.

Each test names the fault its server injects. The server takes one script step per attempt and
records, per attempt, the ``grpc-previous-rpc-attempts`` it carried and the request messages it
read, so the checks are counts and order (which attempt got which messages), not timings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import anyio
import pytest

import rpcfw
from rpcfw import Status
from tests.echo_service import wait_until
from tests.integration.test_retries import PREVIOUS, PUSHBACK, hedging_config, retry_config

UNAVAILABLE = ("fail", Status.UNAVAILABLE, None)


def _fails_after(step: Any, seen: list[str]) -> bool:
    """A ``("fail_after_read", n, status)`` step has read its n requests."""
    return isinstance(step, tuple) and step[0] == "fail_after_read" and len(seen) == step[1]


def make_stream_scripted(mod: ModuleType) -> Any:
    Response = mod.EchoResponse

    class StreamScripted(mod.EchoBase):  # type: ignore[misc,name-defined]
        """One script step per attempt (any method; every attempt's trailers carry its number
        as ``x-attempt``, unless a pushback replaces them): "ok"; "slow" (waits until cancelled);
        ``("fail", status, pushback or None)``: fails before sending any message (client
        streams: after reading every request); ``("fail_after_read", n, status)``: reads n
        requests, then fails without answering; ``("fail_after_reply", status)``: sends one
        message, then fails."""

        def __init__(self) -> None:
            self.script: list[Any] = []
            self.previous: list[str | None] = []
            self.received: list[list[str]] = []  # per attempt: the requests it read
            self.cancelled = 0

        def _attempt(self, context: rpcfw.CallContext) -> Any:
            value = context.invocation_metadata.get(PREVIOUS)
            self.previous.append(None if value is None else str(value))
            self.received.append([])
            context.set_trailing_metadata([("x-attempt", str(len(self.previous)))])
            return self.script.pop(0) if self.script else "ok"

        async def _slow(self) -> None:
            try:
                await anyio.sleep(30)  # the slow attempt under test: waits until cancelled
            except anyio.get_cancelled_exc_class():
                self.cancelled += 1
                raise

        @staticmethod
        def _fail(step: Any, context: rpcfw.CallContext) -> None:
            _, status, pushback = step
            if pushback is not None:
                context.set_trailing_metadata([(PUSHBACK, pushback)])
            context.abort(status, "scripted failure")

        def _reply(self, message: str, index: int) -> Any:
            return Response(message=message, index=index, server_id=str(len(self.previous)))

        async def unary(self, request: Any, context: rpcfw.CallContext) -> Any:
            step = self._attempt(context)
            if step == "slow":
                await self._slow()
            if isinstance(step, tuple) and step[0] == "fail":
                self._fail(step, context)
            return self._reply(request.message, len(self.previous))

        async def server_stream(
            self, request: Any, context: rpcfw.CallContext
        ) -> AsyncIterator[Any]:
            step = self._attempt(context)
            self.received[-1].append(request.message)
            if step == "slow":
                await self._slow()
            if isinstance(step, tuple) and step[0] == "fail":
                self._fail(step, context)
            if isinstance(step, tuple) and step[0] == "fail_after_headers":
                await context.send_initial_metadata([("x-attempt", str(len(self.previous)))])
                context.abort(step[1], "scripted failure after the response headers")
            for index in range(request.count):
                yield self._reply(request.message, index)
                if isinstance(step, tuple) and step[0] == "fail_after_reply":
                    context.abort(step[1], "scripted failure after a message")

        async def client_stream(
            self, requests: AsyncIterator[Any], context: rpcfw.CallContext
        ) -> Any:
            step = self._attempt(context)
            seen = self.received[-1]
            async for request in requests:
                seen.append(request.message)
                if _fails_after(step, seen):
                    context.abort(step[2], "scripted failure after reading")
            if isinstance(step, tuple) and step[0] == "fail":
                self._fail(step, context)
            return self._reply(",".join(seen), len(seen))

        async def bidi(
            self, requests: AsyncIterator[Any], context: rpcfw.CallContext
        ) -> AsyncIterator[Any]:
            step = self._attempt(context)
            seen = self.received[-1]
            async for request in requests:
                seen.append(request.message)
                if _fails_after(step, seen):
                    context.abort(step[2], "scripted failure after reading")
                if isinstance(step, tuple) and step[0] == "fail_after_read":
                    continue
                yield self._reply(request.message, len(seen))
                if isinstance(step, tuple) and step[0] == "fail_after_reply":
                    context.abort(step[1], "scripted failure after a message")

    return StreamScripted()


@pytest.fixture
async def scripted(echo_pb: ModuleType) -> AsyncIterator[tuple[Any, rpcfw.Server]]:
    service = make_stream_scripted(echo_pb)
    server = rpcfw.Server([service])
    await server.start("127.0.0.1", 0)
    yield service, server
    await server.stop(grace=1)


def idempotent(spec: rpcfw.MethodSpec[Any, Any]) -> rpcfw.MethodSpec[Any, Any]:
    """``spec`` as if its proto said ``option idempotency_level = IDEMPOTENT``."""
    return dataclasses.replace(spec, idempotent=True)


def requests(mod: ModuleType, *messages: str, payload: bytes = b"") -> list[Any]:
    return [mod.EchoRequest(message=m, payload=payload) for m in messages]


# -- server streaming -----------------------------------------------------------------------------
async def test_server_stream_failing_twice_before_any_message_is_retried_and_succeeds(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """Fault: the first two attempts end UNAVAILABLE before sending a message."""
    service, server = scripted
    service.script = [UNAVAILABLE, UNAVAILABLE, "ok"]
    spec = idempotent(echo_pb.ECHO_SERVER_STREAM)
    async with rpcfw.Channel(server.address, service_config=retry_config()) as channel:
        request = echo_pb.EchoRequest(message="s", count=3)
        replies = [reply async for reply in channel.unary_stream(spec, request, timeout=10)]
    assert [(r.index, r.server_id) for r in replies] == [(0, "3"), (1, "3"), (2, "3")]
    assert service.previous == [None, "1", "2"]
    assert service.received == [["s"], ["s"], ["s"]]  # the request went to every attempt


async def test_server_stream_failing_after_headers_without_a_message_is_retried(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """Fault: the first attempt sends its response headers, then ends UNAVAILABLE with no
    message (not a trailers-only answer): still not committed, so retried; every message of
    the second attempt arrives and the call shows that attempt's metadata."""
    service, server = scripted
    service.script = [("fail_after_headers", Status.UNAVAILABLE), "ok"]
    spec = idempotent(echo_pb.ECHO_SERVER_STREAM)
    async with rpcfw.Channel(server.address, service_config=retry_config()) as channel:
        request = echo_pb.EchoRequest(message="s", count=3)
        call = channel.server_stream_call(spec, request, timeout=10)
        replies = [reply async for reply in call]
        # the call object shows the second attempt: not the first one's headers (x-attempt 1)
        assert call.status is Status.OK and call.initial_metadata == rpcfw.Metadata()
        assert call.trailing_metadata is not None
        assert call.trailing_metadata.get_text("x-attempt") == "2"
    assert [(r.index, r.server_id) for r in replies] == [(0, "2"), (1, "2"), (2, "2")]
    assert service.previous == [None, "1"]


async def test_server_stream_failing_after_its_first_message_is_committed(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """Fault: UNAVAILABLE after the first response message: the call committed, no retry."""
    service, server = scripted
    service.script = [("fail_after_reply", Status.UNAVAILABLE), "ok"]
    spec = idempotent(echo_pb.ECHO_SERVER_STREAM)
    replies: list[Any] = []
    async with rpcfw.Channel(server.address, service_config=retry_config()) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            request = echo_pb.EchoRequest(message="s", count=3)
            async for reply in channel.unary_stream(spec, request, timeout=10):
                replies.append(reply)
    assert info.value.status is Status.UNAVAILABLE
    assert [r.index for r in replies] == [0] and service.previous == [None]


async def test_server_stream_pushback_replaces_the_backoff(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """Fault: UNAVAILABLE with a 0 ms pushback; the backoff is 100 s, so only the pushback lets
    the retry happen within the call's 20 s."""
    service, server = scripted
    service.script = [("fail", Status.UNAVAILABLE, "0"), "ok"]
    spec = idempotent(echo_pb.ECHO_SERVER_STREAM)
    async with rpcfw.Channel(server.address, service_config=retry_config(initial="100s")) as ch:
        request = echo_pb.EchoRequest(message="p", count=1)
        replies = [reply async for reply in ch.unary_stream(spec, request, timeout=20)]
    assert [r.server_id for r in replies] == ["2"] and service.previous == [None, "1"]


async def test_server_stream_negative_pushback_stops_retries(
    echo_pb: ModuleType, scripted: Any
) -> None:
    service, server = scripted
    service.script = [("fail", Status.UNAVAILABLE, "-1"), "ok"]
    spec = idempotent(echo_pb.ECHO_SERVER_STREAM)
    async with rpcfw.Channel(server.address, service_config=retry_config()) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            async for _ in channel.unary_stream(spec, echo_pb.EchoRequest(count=1), timeout=10):
                pass
    assert info.value.status is Status.UNAVAILABLE and service.previous == [None]


async def test_stream_throttling_stops_retries_after_enough_failures(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """Fault: every attempt UNAVAILABLE. maxTokens 4: two failures leave 2 tokens (not > 2)."""
    service, server = scripted
    service.script = [UNAVAILABLE] * 10
    config = {**retry_config(), "retryThrottling": {"maxTokens": 4, "tokenRatio": 0.1}}
    spec = idempotent(echo_pb.ECHO_SERVER_STREAM)
    async with rpcfw.Channel(server.address, service_config=config) as channel:
        for _ in range(2):
            with pytest.raises(rpcfw.RpcError):
                async for _ in channel.unary_stream(spec, echo_pb.EchoRequest(count=1)):
                    pass
    assert service.previous == [None, "1", None]  # call 1: 2 attempts, call 2: 1


async def test_stream_attempt_outcomes_feed_the_throttle(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """Fault: one UNAVAILABLE before any message (takes a token), then OK (gives back 0.5);
    then a failure after the first reply (committed, still counted: takes one)."""
    service, server = scripted
    config = {**retry_config(), "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.5}}
    service.script = [UNAVAILABLE, "ok", ("fail_after_reply", Status.UNAVAILABLE)]
    spec = idempotent(echo_pb.ECHO_SERVER_STREAM)
    async with rpcfw.Channel(server.address, service_config=config) as channel:
        throttle = channel._retry_throttle
        assert throttle is not None
        request = echo_pb.EchoRequest(count=2)
        assert len([r async for r in channel.unary_stream(spec, request, timeout=10)]) == 2
        assert throttle.tokens == 9.5
        with pytest.raises(rpcfw.RpcError):
            async for _ in channel.unary_stream(spec, request, timeout=10):
                pass
        assert throttle.tokens == 8.5
    assert service.previous == [None, "1", None]


async def test_stream_retries_stop_at_max_attempts(echo_pb: ModuleType, scripted: Any) -> None:
    service, server = scripted
    service.script = [UNAVAILABLE] * 10
    spec = idempotent(echo_pb.ECHO_CLIENT_STREAM)
    async with rpcfw.Channel(server.address, service_config=retry_config(3)) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await channel.stream_unary(spec, requests(echo_pb, "a"), timeout=10)
    assert info.value.status is Status.UNAVAILABLE and service.previous == [None, "1", "2"]


async def test_non_idempotent_streaming_method_is_sent_once(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """Fault: UNAVAILABLE before any message, on a method not declared idempotent."""
    service, server = scripted
    service.script = [UNAVAILABLE, "ok"]
    async with rpcfw.Channel(server.address, service_config=retry_config()) as channel:
        with pytest.raises(rpcfw.RpcError):
            await channel.stream_unary(echo_pb.ECHO_CLIENT_STREAM, requests(echo_pb, "a"))
    assert service.previous == [None]


async def test_service_config_timeout_applies_to_streaming_calls(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """Fault: the server never answers; the method config's timeout (no retry policy) ends
    the call with DEADLINE_EXCEEDED though the caller gave no deadline."""
    service, server = scripted
    service.script = ["slow"]
    config = {"methodConfig": [{"name": [{"service": "echo.v1.Echo"}], "timeout": "0.2s"}]}
    async with rpcfw.Channel(server.address, service_config=config) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            async for _ in channel.unary_stream(echo_pb.ECHO_SERVER_STREAM, echo_pb.EchoRequest()):
                pass
    assert info.value.status is Status.DEADLINE_EXCEEDED and service.previous == [None]


async def test_the_one_request_of_a_call_is_not_counted_in_the_retry_buffer(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """Fault: UNAVAILABLE, then OK. A 100-byte request passes a 50-byte per-call buffer, but a
    call's one request is the caller's object (kept anyway, as by the unary stub): the server
    stream is still retried and the buffer holds nothing."""
    service, server = scripted
    service.script = [UNAVAILABLE, "ok"]
    spec = idempotent(echo_pb.ECHO_SERVER_STREAM)
    async with rpcfw.Channel(
        server.address, service_config=retry_config(), per_call_retry_buffer_size=50
    ) as channel:
        request = echo_pb.EchoRequest(payload=b"x" * 100, count=1)
        replies = [r async for r in channel.unary_stream(spec, request, timeout=10)]
        assert channel._retry_buffer.used == 0
    assert [r.server_id for r in replies] == ["2"] and service.previous == [None, "1"]


# -- client streaming -----------------------------------------------------------------------------
async def test_client_stream_replays_the_buffered_messages_to_the_new_attempt(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """Fault: the first attempt reads two requests, then fails UNAVAILABLE without answering.
    The second attempt gets every request again, in order."""
    service, server = scripted
    service.script = [("fail_after_read", 2, Status.UNAVAILABLE), "ok"]
    spec = idempotent(echo_pb.ECHO_CLIENT_STREAM)
    async with rpcfw.Channel(server.address, service_config=retry_config()) as channel:
        reply = await channel.stream_unary(spec, requests(echo_pb, "a", "b", "c"), timeout=10)
    assert reply.message == "a,b,c" and reply.server_id == "2"
    assert service.received == [["a", "b"], ["a", "b", "c"]]
    assert service.previous == [None, "1"]
    assert channel._retry_buffer.used == 0  # released at the commit


async def test_client_stream_call_object_replays_messages_sent_before_the_failure(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """Fault: the first attempt fails UNAVAILABLE after reading two requests, while the client
    is still writing; the messages sent to it and those sent afterwards reach the second."""
    service, server = scripted
    service.script = [("fail_after_read", 2, Status.UNAVAILABLE), "ok"]
    spec = idempotent(echo_pb.ECHO_CLIENT_STREAM)
    channel = rpcfw.Channel(server.address, service_config=retry_config())
    async with channel, channel.client_stream_call(spec, timeout=10) as call:
        await call.send(echo_pb.EchoRequest(message="a"))
        await call.send(echo_pb.EchoRequest(message="b"))
        await wait_until(lambda: service.received == [["a", "b"]])  # attempt 1 has failed
        await call.send(echo_pb.EchoRequest(message="c"))
        reply = await call.response()
        # the call object shows the attempt that answered, not the failed first one
        assert call.status is Status.OK and call.peer == server.address
        assert call.trailing_metadata is not None
        assert call.trailing_metadata.get_text("x-attempt") == "2"
    assert reply.message == "a,b,c"
    assert service.received == [["a", "b"], ["a", "b", "c"]]
    assert service.previous == [None, "1"]


@pytest.mark.parametrize("limit", ["per_call_retry_buffer_size", "retry_buffer_size"])
async def test_client_stream_past_the_buffer_limit_is_committed_and_not_retried(
    echo_pb: ModuleType, scripted: Any, limit: str
) -> None:
    """Fault: UNAVAILABLE after reading the requests. 3 requests of 100 bytes each pass a 250
    byte buffer limit (per call, or for the channel): the call committed, no retry."""
    service, server = scripted
    service.script = [("fail", Status.UNAVAILABLE, None), "ok"]
    spec = idempotent(echo_pb.ECHO_CLIENT_STREAM)
    options: dict[str, Any] = {limit: 250}
    big = requests(echo_pb, "a", "b", "c", payload=b"x" * 100)
    async with rpcfw.Channel(server.address, service_config=retry_config(), **options) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await channel.stream_unary(spec, big, timeout=10)
        assert channel._retry_buffer.used == 0
    assert info.value.status is Status.UNAVAILABLE and service.previous == [None]
    # the same requests under the default limits are retried
    service.script, service.previous, service.received = [UNAVAILABLE, "ok"], [], []
    async with rpcfw.Channel(server.address, service_config=retry_config()) as channel:
        reply = await channel.stream_unary(spec, big, timeout=10)
    assert reply.message == "a,b,c" and service.previous == [None, "1"]


# -- bidi -----------------------------------------------------------------------------------------
async def test_bidi_failing_before_its_first_reply_is_retried_with_the_sent_messages(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """Fault: the first attempt reads two requests and fails UNAVAILABLE without replying; the
    reader's next recv() moves to a second attempt, which gets both again, then the third."""
    service, server = scripted
    service.script = [("fail_after_read", 2, Status.UNAVAILABLE), "ok"]
    spec = idempotent(echo_pb.ECHO_BIDI)
    channel = rpcfw.Channel(server.address, service_config=retry_config())
    async with channel, channel.stream_stream(spec, timeout=10) as stream:
        await stream.send(echo_pb.EchoRequest(message="a"))
        await stream.send(echo_pb.EchoRequest(message="b"))
        first = await stream.recv()
        await stream.send(echo_pb.EchoRequest(message="c"))
        await stream.done_writing()
        rest = [reply async for reply in stream]
    assert first is not None
    assert [r.message for r in [first, *rest]] == ["a", "b", "c"]
    assert {r.server_id for r in [first, *rest]} == {"2"}
    assert service.received == [["a", "b"], ["a", "b", "c"]]
    assert service.previous == [None, "1"]


async def test_bidi_failing_after_its_first_reply_is_committed(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """Fault: UNAVAILABLE right after the first reply: committed, not retried."""
    service, server = scripted
    service.script = [("fail_after_reply", Status.UNAVAILABLE), "ok"]
    spec = idempotent(echo_pb.ECHO_BIDI)
    async with rpcfw.Channel(server.address, service_config=retry_config()) as channel:
        replies: list[Any] = []
        with pytest.raises(rpcfw.RpcError) as info:
            async for reply in channel.stream_stream_iter(spec, requests(echo_pb, "a", "b")):
                replies.append(reply)
    assert info.value.status is Status.UNAVAILABLE
    assert [r.message for r in replies] == ["a"] and service.previous == [None]


async def test_cancel_during_the_backoff_ends_the_call_cancelled(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """Fault: UNAVAILABLE, then a 100 s backoff; cancel() ends the call as CANCELLED with no
    second attempt."""
    service, server = scripted
    service.script = [UNAVAILABLE, "ok"]
    spec = idempotent(echo_pb.ECHO_SERVER_STREAM)
    async with rpcfw.Channel(server.address, service_config=retry_config(initial="100s")) as ch:
        call = ch.server_stream_call(spec, echo_pb.EchoRequest(count=1), timeout=60)
        outcome: list[BaseException] = []

        async def read() -> None:
            try:
                await call.recv()
            except rpcfw.RpcError as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as group:
            group.start_soon(read)
            await wait_until(lambda: service.previous == [None])
            call.cancel()
    assert [getattr(e, "status", None) for e in outcome] == [Status.CANCELLED]
    assert call.status is Status.CANCELLED and service.previous == [None]


# -- call objects: unary_call, hedged streams --------------------------------------------------
async def test_unary_call_object_is_retried(echo_pb: ModuleType, scripted: Any) -> None:
    """Fault: UNAVAILABLE twice; ``channel.unary_call`` retries as the stub does."""
    service, server = scripted
    service.script = [UNAVAILABLE, UNAVAILABLE, "ok"]
    spec = idempotent(echo_pb.ECHO_UNARY)
    async with rpcfw.Channel(server.address, service_config=retry_config()) as channel:
        call = channel.unary_call(spec, echo_pb.EchoRequest(message="u"), timeout=10)
        reply = await call
        # the call object shows the third attempt's end, not a failed one's
        assert call.status is Status.OK and call.trailing_metadata is not None
        assert call.trailing_metadata.get_text("x-attempt") == "3"
    assert reply.index == 3 and service.previous == [None, "1", "2"]


async def test_unary_call_object_is_hedged_and_the_slow_attempt_cancelled(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """Fault: the first attempt never answers; the hedge 50 ms later does."""
    service, server = scripted
    service.script = ["slow", "ok"]
    spec = idempotent(echo_pb.ECHO_UNARY)
    async with rpcfw.Channel(server.address, service_config=hedging_config("0.05s")) as channel:
        reply = await channel.unary_call(spec, echo_pb.EchoRequest(), timeout=10)
        assert reply.index == 2
        await wait_until(lambda: service.cancelled == 1)
    assert service.previous == [None, "1"]


async def test_server_stream_is_hedged_until_a_first_message(
    echo_pb: ModuleType, scripted: Any
) -> None:
    """Fault: the first attempt never answers; the second streams; the first is cancelled."""
    service, server = scripted
    service.script = ["slow", "ok"]
    spec = idempotent(echo_pb.ECHO_SERVER_STREAM)
    async with rpcfw.Channel(server.address, service_config=hedging_config("0.05s")) as channel:
        request = echo_pb.EchoRequest(message="h", count=2)
        replies = [r async for r in channel.unary_stream(spec, request, timeout=10)]
        await wait_until(lambda: service.cancelled == 1)
    assert [(r.index, r.server_id) for r in replies] == [(0, "2"), (1, "2")]
    assert service.previous == [None, "1"]


def test_stream_retries_on_trio(echo_pb: ModuleType) -> None:
    """The streaming retry path on the anyio runtime (trio). Fault: the first attempt of a
    client stream reads both requests, then fails UNAVAILABLE; the second gets both again."""

    async def main() -> tuple[Any, list[list[str]]]:
        service = make_stream_scripted(echo_pb)
        service.script = [UNAVAILABLE, "ok"]
        server = rpcfw.Server([service])
        async with anyio.create_task_group() as group:
            port = await group.start(server.serve, "127.0.0.1", 0)
            with anyio.fail_after(10):  # liveness bound only
                async with rpcfw.Channel(
                    f"127.0.0.1:{port}", service_config=retry_config()
                ) as channel:
                    spec = idempotent(echo_pb.ECHO_CLIENT_STREAM)
                    reply = await channel.stream_unary(spec, requests(echo_pb, "a", "b"))
            group.cancel_scope.cancel()
        return reply.message, service.received

    assert anyio.run(main, backend="trio") == ("a,b", [["a", "b"], ["a", "b"]])

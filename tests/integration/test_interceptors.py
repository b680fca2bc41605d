"""Client and server interceptors on the four call kinds: order, messages, metadata, early
ends, final status and duration, hook failures; and the shipped ones (token auth, access log,
deadline guard), also with grpcio as the peer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import grpc
import pytest

import rpcfw
from rpcfw.interceptors import (
    AccessLogClient,
    AccessLogServer,
    BearerTokenAuth,
    ClientCallInfo,
    DeadlineGuard,
    TokenAuthServer,
)
from tests.echo_service import make_echo_service, wait_until

LIVENESS = 10.0  # bound on waits that must not hang (not a timing assertion)


class ClientRecorder(rpcfw.ClientInterceptor):
    def __init__(self, name: str, events: list[str]) -> None:
        self.name, self.events = name, events

    async def start(self, call: ClientCallInfo) -> None:
        self.events.append(f"{self.name}.start {call.kind.name}")
        call.metadata = call.metadata.with_item(f"x-{self.name}", "was-here")

    def on_send(self, call: ClientCallInfo, message: Any) -> None:
        self.events.append(f"{self.name}.send {message.message}")

    def on_receive(self, call: ClientCallInfo, message: Any) -> None:
        self.events.append(f"{self.name}.receive")

    def on_end(self, call: ClientCallInfo) -> None:
        assert call.status is not None and call.duration >= 0
        self.events.append(f"{self.name}.end {call.status.name}")


class ServerRecorder(rpcfw.ServerInterceptor):
    def __init__(self, name: str, events: list[str]) -> None:
        self.name, self.events = name, events

    async def start(self, context: rpcfw.CallContext) -> None:
        seen = sorted(k for k, _ in context.invocation_metadata if k.startswith("x-"))
        self.events.append(f"{self.name}.start {','.join(seen)}")

    def on_receive(self, context: rpcfw.CallContext, message: Any) -> None:
        self.events.append(f"{self.name}.receive {message.message}")

    def on_send(self, context: rpcfw.CallContext, message: Any) -> None:
        self.events.append(f"{self.name}.send")

    def on_end(self, context: rpcfw.CallContext) -> None:
        assert context.status is not None and context.stats is not None
        self.events.append(f"{self.name}.end {context.status.name}")


@pytest.fixture
async def serve(echo_pb: ModuleType) -> AsyncIterator[Any]:
    started: list[rpcfw.Server] = []

    async def start(*interceptors: rpcfw.ServerInterceptor) -> tuple[rpcfw.Server, Any]:
        service = make_echo_service(echo_pb, "s")
        server = rpcfw.Server([service], interceptors=interceptors)
        await server.start("127.0.0.1", 0)
        started.append(server)
        return server, service

    yield start
    for server in started:
        await server.stop(0)


async def requests(echo_pb: ModuleType, *words: str) -> AsyncIterator[Any]:
    for word in words:
        yield echo_pb.EchoRequest(message=word)


async def test_hooks_run_in_order_for_every_call_kind(echo_pb: ModuleType, serve: Any) -> None:
    server_events: list[str] = []
    server, _ = await serve(ServerRecorder("A", server_events), ServerRecorder("B", server_events))
    client_events: list[str] = []
    async with (
        rpcfw.Channel(
            server.address,
            interceptors=[ClientRecorder("a", client_events), ClientRecorder("b", client_events)],
        ) as channel,
        asyncio.timeout(LIVENESS),
    ):
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(message="u"))
        unary = (client_events.copy(), server_events.copy())
        client_events.clear()
        server_events.clear()
        await stub.client_stream(requests(echo_pb, "1", "2"))
        streamed = (client_events.copy(), server_events.copy())
        client_events.clear()
        server_events.clear()
        replies = [r async for r in stub.server_stream(echo_pb.EchoRequest(message="s", count=2))]
        assert len(replies) == 2
        server_streamed = (client_events.copy(), server_events.copy())
    assert unary == (
        ["a.start UNARY_UNARY", "b.start UNARY_UNARY", "a.send u", "b.send u",
         "a.receive", "b.receive", "b.end OK", "a.end OK"],
        ["A.start x-a,x-b", "B.start x-a,x-b", "A.receive u", "B.receive u",
         "A.send", "B.send", "B.end OK", "A.end OK"],
    )  # fmt: skip
    assert streamed[0] == [
        "a.start STREAM_UNARY", "b.start STREAM_UNARY", "a.send 1", "b.send 1",
        "a.send 2", "b.send 2", "a.receive", "b.receive", "b.end OK", "a.end OK",
    ]  # fmt: skip
    assert streamed[1][2:6] == ["A.receive 1", "B.receive 1", "A.receive 2", "B.receive 2"]
    assert server_streamed[1].count("A.send") == 2 and server_streamed[0][-1] == "a.end OK"


async def test_server_interceptor_ends_a_call_before_the_handler_and_sees_errors(
    echo_pb: ModuleType, serve: Any
) -> None:
    """Fault: an interceptor refuses the call; later, the handler aborts; and a client cancels."""

    class Refuse(rpcfw.ServerInterceptor):
        async def start(self, context: rpcfw.CallContext) -> None:
            if context.invocation_metadata.get("x-refuse"):
                context.abort(rpcfw.Status.PERMISSION_DENIED, "not you")

    events: list[str] = []
    server, service = await serve(ServerRecorder("A", events), Refuse())
    async with rpcfw.Channel(server.address) as channel:
        stub = echo_pb.EchoStub(channel)
        with pytest.raises(rpcfw.RpcError) as refused:
            await stub.unary(echo_pb.EchoRequest(), metadata={"x-refuse": "1"}, timeout=LIVENESS)
        assert refused.value.status is rpcfw.Status.PERMISSION_DENIED and service.calls == 0
        with pytest.raises(rpcfw.RpcError):
            await stub.unary(echo_pb.EchoRequest(message="abort:9:no"), timeout=LIVENESS)
        slow = asyncio.ensure_future(stub.unary(echo_pb.EchoRequest(delay_ms=60_000)))
        await wait_until(lambda: service.calls == 2, LIVENESS)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        await wait_until(lambda: events[-1:] == ["A.end CANCELLED"], LIVENESS)
    ends = [e for e in events if ".end" in e]
    assert ends == ["A.end PERMISSION_DENIED", "A.end FAILED_PRECONDITION", "A.end CANCELLED"]


async def test_failing_message_hook_is_logged_and_the_call_goes_on(
    echo_pb: ModuleType, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault: an interceptor's on_send raises."""

    class Broken(rpcfw.ClientInterceptor):
        def on_send(self, call: ClientCallInfo, message: Any) -> None:
            raise RuntimeError("bug in the interceptor")

    server, _ = await serve()
    async with rpcfw.Channel(server.address, interceptors=[Broken()]) as channel:
        reply = await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="ok"))
    assert reply.message == "ok"
    assert any("interceptor hook" in r.getMessage() for r in caplog.records)


async def test_bearer_token_pair_and_api_key(echo_pb: ModuleType, serve: Any) -> None:
    identities: list[Any] = []

    class Identity(rpcfw.ServerInterceptor):
        def on_end(self, context: rpcfw.CallContext) -> None:
            assert context.stats is not None
            identities.append(context.stats.scratch.get("auth.identity"))

    def verify(token: str, context: rpcfw.CallContext) -> str | None:
        return {"t-ann": "ann"}.get(token)

    server, _ = await serve(TokenAuthServer(verify), Identity())
    outcomes = []
    for interceptors in ([BearerTokenAuth("t-ann")], [BearerTokenAuth("t-bob")], []):
        async with rpcfw.Channel(server.address, interceptors=interceptors) as channel:
            try:
                await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(), timeout=LIVENESS)
                outcomes.append("OK")
            except rpcfw.RpcError as exc:
                outcomes.append(f"{exc.status.name}: {exc.message}")
        if not interceptors:  # the health service needs no token
            async with rpcfw.Channel(server.address, health_check="") as channel:
                await echo_pb.EchoStub(channel).unary(
                    echo_pb.EchoRequest(),
                    timeout=LIVENESS,
                    metadata={"authorization": "Bearer t-ann"},
                )
    assert outcomes == [
        "OK",
        "UNAUTHENTICATED: invalid credentials",
        "UNAUTHENTICATED: missing authorization metadata",
    ]
    assert identities[0] == "ann"
    keyed, _ = await serve(TokenAuthServer({"k1"}, header="x-api-key", scheme=None))
    auth = BearerTokenAuth(lambda: "k1", header="x-api-key", scheme=None)
    async with rpcfw.Channel(keyed.address, interceptors=[auth]) as channel:
        assert (
            await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="k"))
        ).message == "k"


async def test_access_log_is_one_line_per_call_with_fields(
    echo_pb: ModuleType, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = await serve(AccessLogServer())
    caplog.set_level(logging.INFO, logger="rpcfw.access")
    async with rpcfw.Channel(server.address, interceptors=[AccessLogClient()]) as channel:
        stub = echo_pb.EchoStub(channel)
        await stub.unary(echo_pb.EchoRequest(message="hello", payload=b"x" * 100))
        with pytest.raises(rpcfw.RpcError):
            await stub.unary(echo_pb.EchoRequest(message="raise"))
    records = [r for r in caplog.records if r.name.startswith("rpcfw.access")]
    server_lines = [r for r in records if r.name == "rpcfw.access"]
    client_lines = [r for r in records if r.name == "rpcfw.access.client"]
    assert len(server_lines) == 2 and len(client_lines) == 2
    ok, failed = server_lines
    assert ok.rpc_method == "/echo.v1.Echo/Unary" and ok.rpc_status == "OK"  # type: ignore[attr-defined]
    assert ok.rpc_bytes_in > 100 and ok.rpc_messages_out == 1  # type: ignore[attr-defined]
    assert ok.rpc_peer.startswith("127.0.0.1:") and ok.levelno == logging.INFO  # type: ignore[attr-defined]
    assert failed.rpc_status == "UNKNOWN" and failed.levelno == logging.WARNING  # type: ignore[attr-defined]
    assert client_lines[0].rpc_bytes_out == ok.rpc_bytes_in  # type: ignore[attr-defined]


async def test_deadline_guard_refuses_clamps_and_defaults(echo_pb: ModuleType, serve: Any) -> None:
    strict, _ = await serve(DeadlineGuard(maximum=5.0))
    clamping, _ = await serve(DeadlineGuard(maximum=2.0, clamp=True))
    defaulting, _ = await serve(DeadlineGuard(require=False, default=3.0))
    results = []
    for server, timeout in [(strict, None), (strict, 60.0), (strict, 1.0), (clamping, 60.0),
                            (defaulting, None)]:  # fmt: skip
        async with rpcfw.Channel(server.address) as channel:
            try:
                reply = await echo_pb.EchoStub(channel).unary(
                    echo_pb.EchoRequest(message="deadline"), timeout=timeout
                )
                results.append(float(reply.message))
            except rpcfw.RpcError as exc:
                results.append(exc.status.name)
    assert results[:2] == ["INVALID_ARGUMENT", "INVALID_ARGUMENT"]
    assert 0 < results[2] <= 1.0 and 0 < results[3] <= 2.0 and 0 < results[4] <= 3.0  # type: ignore[operator]


async def test_interceptors_with_grpcio_peers(echo_pb: ModuleType) -> None:
    """A client interceptor's metadata reaches a grpcio server (its echo comes back), and a
    server's auth interceptor refuses a grpcio client without the token."""
    from tests.interop.grpc_peer import GrpcEcho, GrpcEchoClient

    peer = grpc.aio.server()
    peer.add_generic_rpc_handlers([GrpcEcho(echo_pb).handler()])
    port = peer.add_insecure_port("127.0.0.1:0")
    await peer.start()
    try:
        tagged = BearerTokenAuth("abc", header="x-token", scheme=None)
        async with (
            rpcfw.Channel(f"127.0.0.1:{port}", interceptors=[tagged]) as channel,
            echo_pb.EchoStub(channel).bidi() as bidi,
        ):
            await bidi.send(echo_pb.EchoRequest(message="m"))
            await bidi.done_writing()
            assert [r.message async for r in bidi] == ["m"]
            assert bidi.initial_metadata is not None
            assert bidi.initial_metadata.get("x-token") == "abc"
    finally:
        await peer.stop(0)
    server = rpcfw.Server([make_echo_service(echo_pb, "s")], interceptors=[TokenAuthServer({"t"})])
    await server.start("127.0.0.1", 0)
    channel_ = grpc.aio.insecure_channel(server.address)
    try:
        client = GrpcEchoClient(channel_, echo_pb)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.unary(echo_pb.EchoRequest(), timeout=LIVENESS)
        reply = await client.unary(
            echo_pb.EchoRequest(message="in"), metadata=[("authorization", "Bearer t")]
        )
    finally:
        await channel_.close()
        await server.stop(0)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED and reply.message == "in"

"""rpcfw.otel: spans, trace context propagation (rpcfw <-> rpcfw, grpcio <-> rpcfw) and the
rpc.* metrics, checked with the SDK's in-memory span exporter and metric reader (providers
made per test and passed to the interceptors: no global state)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

import grpc
import pytest

import rpcfw
from rpcfw.interceptors import TokenAuthServer
from tests.echo_service import make_echo_service, wait_until
from tests.interop.grpc_peer import GrpcEcho, GrpcEchoClient
from tests.needs import need

# The SDK comes with the dev extra (CI installs it): without it (or without the otel extra's API
# that rpcfw.otel needs) these tests fail, naming what to install; a skip only with
# RPCFW_ALLOW_MISSING=1 (tests/needs.py)
try:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from rpcfw.otel import OpenTelemetryClientInterceptor, OpenTelemetryServerInterceptor
except ImportError:
    need("opentelemetry.sdk", "pip install '.[dev]'")
    raise

LIVENESS = 10.0  # bound on waits that must not hang (not a timing assertion)
UNARY = "echo.v1.Echo/Unary"
METRICS = {
    f"rpc.{side}.{name}"
    for side in ("client", "server")
    for name in ("duration", "request.size", "response.size", "requests_per_rpc",
                 "responses_per_rpc")
}  # fmt: skip


class Telemetry:
    """An SDK tracer provider and meter provider with in-memory export, and interceptors
    bound to them (with a W3C trace-context propagator of their own)."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.propagator = TraceContextTextMapPropagator()

    def client(self, **options: Any) -> OpenTelemetryClientInterceptor:
        return OpenTelemetryClientInterceptor(
            self.tracer_provider, self.meter_provider, self.propagator, **options
        )

    def server(self, **options: Any) -> OpenTelemetryServerInterceptor:
        return OpenTelemetryServerInterceptor(
            self.tracer_provider, self.meter_provider, self.propagator, **options
        )

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    async def wait_spans(self, count: int) -> list[ReadableSpan]:
        """The finished spans once there are ``count`` (the server's may end after the
        client has its answer)."""
        await wait_until(lambda: len(self.spans) >= count, LIVENESS)
        assert len(self.spans) == count, self.spans
        return list(self.spans)

    def metrics(self) -> dict[str, Any]:
        """The metrics collected so far, by name."""
        data = self.reader.get_metrics_data()
        assert data is not None
        return {
            metric.name: metric
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }

    def points(self, name: str, **attributes: Any) -> list[HistogramDataPoint]:
        """The data points of histogram ``name`` whose attributes include ``attributes``."""
        metric = self.metrics()[name]
        return [
            point
            for point in metric.data.data_points
            if all(point.attributes.get(k) == v for k, v in attributes.items())
        ]

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.shutdown()


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    """``await serve(service, *interceptors)``: a started rpcfw server, stopped at teardown."""
    started: list[rpcfw.Server] = []

    async def start(service: Any, *interceptors: rpcfw.ServerInterceptor) -> rpcfw.Server:
        server = rpcfw.Server([service], interceptors=interceptors)
        await server.start("127.0.0.1", 0)
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop(0)


def by_kind(spans: list[ReadableSpan], kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in spans if span.kind is kind]


def traceparent(span: ReadableSpan) -> str:
    context = span.get_span_context()
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


async def test_unary_call_has_a_client_span_and_a_server_span_as_its_child(
    echo_pb: ModuleType, serve: Any, telemetry: Telemetry
) -> None:
    server = await serve(make_echo_service(echo_pb, "s"), telemetry.server())
    async with (
        rpcfw.Channel(server.address, interceptors=[telemetry.client()]) as channel,
        asyncio.timeout(LIVENESS),
    ):
        reply = await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="hi"))
        assert reply.message == "hi"
        spans = await telemetry.wait_spans(2)
    [client], [served] = by_kind(spans, SpanKind.CLIENT), by_kind(spans, SpanKind.SERVER)
    assert client.name == served.name == UNARY
    common = {"rpc.system": "grpc", "rpc.service": "echo.v1.Echo", "rpc.method": "Unary",
              "rpc.grpc.status_code": 0}  # fmt: skip
    assert dict(client.attributes or {}) == {
        **common,
        "server.address": "127.0.0.1",
        "server.port": server.port,
        "network.transport": "tcp",
        "network.peer.address": "127.0.0.1",
        "network.peer.port": server.port,
    }
    served_attributes = dict(served.attributes or {})
    assert {k: served_attributes.pop(k) for k in common} == common
    assert served_attributes.pop("network.peer.address") == "127.0.0.1"
    assert isinstance(served_attributes.pop("network.peer.port"), int)
    assert served_attributes == {"network.transport": "tcp"}
    assert client.status.status_code is StatusCode.UNSET
    assert served.status.status_code is StatusCode.UNSET
    # parent-child across the wire
    assert client.parent is None
    assert served.parent is not None and served.parent.is_remote
    assert client.context is not None and served.context is not None
    assert served.parent.span_id == client.context.span_id
    assert served.context.trace_id == client.context.trace_id


async def test_handler_calls_are_children_of_the_server_span(
    echo_pb: ModuleType, serve: Any, telemetry: Telemetry
) -> None:
    """client -> A -> B: A's handler calls B through its own instrumented channel."""
    backend = await serve(make_echo_service(echo_pb, "b"), telemetry.server())
    seen: dict[str, Any] = {}

    class Probe(rpcfw.ServerInterceptor):  # outside the OTel one: sees the context around it
        async def start(self, context: rpcfw.CallContext) -> None:
            seen["before start"] = trace.get_current_span()

        def on_end(self, context: rpcfw.CallContext) -> None:
            seen["after end"] = trace.get_current_span()

    async with rpcfw.Channel(backend.address, interceptors=[telemetry.client()]) as to_backend:

        class Frontend(type(make_echo_service(echo_pb, "a"))):  # type: ignore[misc]
            async def unary(self, request: Any, context: rpcfw.CallContext) -> Any:
                seen["handler"] = trace.get_current_span()
                return await echo_pb.EchoStub(to_backend).unary(request)

        frontend = await serve(Frontend(), Probe(), telemetry.server())
        async with (
            rpcfw.Channel(frontend.address, interceptors=[telemetry.client()]) as channel,
            asyncio.timeout(LIVENESS),
        ):
            reply = await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="x"))
            assert reply.server_id == "b"
            spans = await telemetry.wait_spans(4)

    ports = {frontend.port: "a", backend.port: "b"}
    clients = {ports[int(s.attributes["server.port"])]: s  # type: ignore[arg-type,index]
               for s in by_kind(spans, SpanKind.CLIENT)}  # fmt: skip
    outer, inner = clients["a"], clients["b"]
    a_served, b_served = sorted(by_kind(spans, SpanKind.SERVER), key=lambda s: s.start_time or 0)
    assert {s.name for s in spans} == {UNARY}
    assert len({s.context.trace_id for s in spans}) == 1

    def parent_of(span: ReadableSpan) -> int | None:
        return span.parent.span_id if span.parent else None

    assert parent_of(outer) is None
    assert parent_of(a_served) == outer.context.span_id
    assert parent_of(inner) == a_served.context.span_id
    assert inner.parent is not None and not inner.parent.is_remote  # same process
    assert parent_of(b_served) == inner.context.span_id
    # the server span is current in the handler, and only while the call runs
    assert seen["handler"].get_span_context() == a_served.context
    assert not seen["before start"].get_span_context().is_valid
    assert not seen["after end"].get_span_context().is_valid


async def test_error_status(echo_pb: ModuleType, serve: Any, telemetry: Telemetry) -> None:
    """Client spans are ERROR for any status but OK; server spans only for server errors."""
    server = await serve(make_echo_service(echo_pb, "s"), telemetry.server())
    async with (
        rpcfw.Channel(server.address, interceptors=[telemetry.client()]) as channel,
        asyncio.timeout(LIVENESS),
    ):
        stub = echo_pb.EchoStub(channel)
        with pytest.raises(rpcfw.RpcError) as info:
            await stub.unary(echo_pb.EchoRequest(message="abort:5:no such thing"))
        assert info.value.status is rpcfw.Status.NOT_FOUND
        [served, client] = sorted(await telemetry.wait_spans(2), key=lambda s: s.kind.value)
        telemetry.exporter.clear()
        with pytest.raises(rpcfw.RpcError) as info:
            await stub.unary(echo_pb.EchoRequest(message="raise"))
        assert info.value.status is rpcfw.Status.UNKNOWN
        [served_unknown, client_unknown] = sorted(
            await telemetry.wait_spans(2), key=lambda s: s.kind.value
        )
    assert (served.kind, client.kind) == (SpanKind.SERVER, SpanKind.CLIENT)
    for span in (client, served):
        assert span.attributes is not None and span.attributes["rpc.grpc.status_code"] == 5
    assert client.status.status_code is StatusCode.ERROR
    assert client.status.description == "no such thing"
    assert served.status.status_code is StatusCode.UNSET  # NOT_FOUND: the client's problem
    for span in (client_unknown, served_unknown):
        assert span.attributes is not None and span.attributes["rpc.grpc.status_code"] == 2
        assert span.status.status_code is StatusCode.ERROR
    [point] = telemetry.points("rpc.client.duration", **{"rpc.grpc.status_code": 5})
    assert point.count == 1
    [point] = telemetry.points("rpc.server.duration", **{"rpc.grpc.status_code": 2})
    assert point.count == 1


async def test_streaming_calls_count_messages(
    echo_pb: ModuleType, serve: Any, telemetry: Telemetry
) -> None:
    server = await serve(make_echo_service(echo_pb, "s"), telemetry.server(message_events=True))

    async def requests(*words: str) -> AsyncIterator[Any]:
        for word in words:
            yield echo_pb.EchoRequest(message=word)

    async with (
        rpcfw.Channel(server.address, interceptors=[telemetry.client()]) as channel,
        asyncio.timeout(LIVENESS),
    ):
        stub = echo_pb.EchoStub(channel)
        reply = await stub.client_stream(requests("a", "bb", "ccc"))
        assert reply.message == "a,bb,ccc"
        replies = [r async for r in stub.server_stream(echo_pb.EchoRequest(message="s", count=4))]
        assert len(replies) == 4
        replies = [r async for r in stub.bidi(requests("1", "2"))]
        assert len(replies) == 2
        await telemetry.wait_spans(6)

    expected = {"ClientStream": (3, 1), "ServerStream": (1, 4), "Bidi": (2, 2)}
    for method, (sent, received) in expected.items():
        for side in ("client", "server"):
            points = {
                name: telemetry.points(f"rpc.{side}.{name}", **{"rpc.method": method})
                for name in ("requests_per_rpc", "responses_per_rpc", "request.size",
                             "response.size")
            }  # fmt: skip
            assert all(len(found) == 1 for found in points.values()), (method, side)
            requests_per_rpc, responses_per_rpc = (
                points["requests_per_rpc"][0], points["responses_per_rpc"][0]
            )  # fmt: skip
            assert (requests_per_rpc.count, requests_per_rpc.sum) == (1, sent), (method, side)
            assert (responses_per_rpc.count, responses_per_rpc.sum) == (1, received)
            assert (points["request.size"][0].count, points["response.size"][0].count) == (
                sent, received
            )  # fmt: skip
    # request sizes are per message: "a", "bb", "ccc" (field 1, tag + length + text)
    [sizes] = telemetry.points("rpc.server.request.size", **{"rpc.method": "ClientStream"})
    assert (sizes.sum, sizes.min, sizes.max) == (3 + 4 + 5, 3, 5)
    # message events on the server spans (the only ones asked for them)
    [served] = [s for s in telemetry.spans if s.kind is SpanKind.SERVER and s.name.endswith("Bidi")]
    events = [(e.name, dict(e.attributes or {})) for e in served.events]
    assert [(a["rpc.message.type"], a["rpc.message.id"]) for _, a in events] == [
        ("RECEIVED", 1), ("SENT", 1), ("RECEIVED", 2), ("SENT", 2)
    ]  # fmt: skip
    assert {name for name, _ in events} == {"rpc.message"}
    [client] = [s for s in telemetry.spans if s.kind is SpanKind.CLIENT and s.name.endswith("Bidi")]
    assert not client.events


async def test_metrics_names_units_and_attributes(
    echo_pb: ModuleType, serve: Any, telemetry: Telemetry
) -> None:
    server = await serve(make_echo_service(echo_pb, "s"), telemetry.server())
    request = echo_pb.EchoRequest(message="hello", payload=b"x" * 100)
    async with (
        rpcfw.Channel(server.address, interceptors=[telemetry.client()]) as channel,
        asyncio.timeout(LIVENESS),
    ):
        reply = await echo_pb.EchoStub(channel).unary(request)
        await telemetry.wait_spans(2)

    found = telemetry.metrics()
    assert set(found) == METRICS
    for name, metric in found.items():
        expected = "ms" if name.endswith("duration") else "By" if "size" in name else "{count}"
        assert metric.unit == expected, name
    method = {"rpc.system": "grpc", "rpc.service": "echo.v1.Echo", "rpc.method": "Unary"}
    with_status = {**method, "rpc.grpc.status_code": 0}
    for side in ("client", "server"):
        [duration] = telemetry.points(f"rpc.{side}.duration")
        assert dict(duration.attributes or {}) == with_status
        assert duration.count == 1 and 0 < duration.sum < LIVENESS * 1000
        for name in ("requests_per_rpc", "responses_per_rpc"):
            [point] = telemetry.points(f"rpc.{side}.{name}")
            assert dict(point.attributes or {}) == with_status
            assert (point.count, point.sum) == (1, 1)
        # sizes are recorded per message, as it goes: before the status code is known
        [request_size] = telemetry.points(f"rpc.{side}.request.size")
        [response_size] = telemetry.points(f"rpc.{side}.response.size")
        assert dict(request_size.attributes or {}) == method
        assert dict(response_size.attributes or {}) == method
        assert request_size.sum == len(request.SerializeToString())
        assert response_size.sum == len(reply.SerializeToString())


async def test_grpcio_client_trace_context_reaches_an_rpcfw_server(
    echo_pb: ModuleType, serve: Any, telemetry: Telemetry
) -> None:
    server = await serve(make_echo_service(echo_pb, "s"), telemetry.server())
    trace_id, span_id = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7
    async with (
        grpc.aio.insecure_channel(server.address) as channel,
        asyncio.timeout(LIVENESS),
    ):
        client = GrpcEchoClient(channel, echo_pb)
        await client.unary(
            echo_pb.EchoRequest(message="hi"),
            metadata=[("traceparent", f"00-{trace_id:032x}-{span_id:016x}-01"),
                      ("tracestate", "vendor=value")],
        )  # fmt: skip
        [served] = await telemetry.wait_spans(1)
    assert served.kind is SpanKind.SERVER and served.name == UNARY
    assert served.context is not None and served.context.trace_id == trace_id
    assert served.parent is not None and served.parent.is_remote
    assert served.parent.span_id == span_id
    assert served.context.trace_state.get("vendor") == "value"


async def test_rpcfw_client_trace_context_reaches_a_grpcio_server(
    echo_pb: ModuleType, telemetry: Telemetry
) -> None:
    received: list[tuple[str | None, str | None]] = []

    class Recording(GrpcEcho):
        async def unary(self, request: Any, context: Any) -> Any:
            metadata = dict(context.invocation_metadata())
            received.append((metadata.get("traceparent"), metadata.get("tracestate")))
            return await super().unary(request, context)

    peer = grpc.aio.server()
    peer.add_generic_rpc_handlers([Recording(echo_pb).handler()])
    port = peer.add_insecure_port("127.0.0.1:0")
    await peer.start()
    try:
        async with (
            rpcfw.Channel(f"127.0.0.1:{port}", interceptors=[telemetry.client()]) as channel,
            asyncio.timeout(LIVENESS),
        ):
            reply = await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="hi"))
            assert reply.server_id == "grpcio"
    finally:
        await peer.stop(0)
    [client] = telemetry.spans
    assert client.kind is SpanKind.CLIENT and client.name == UNARY
    assert client.attributes is not None and client.attributes["server.port"] == port
    assert received == [(traceparent(client), None)]


async def test_caller_trace_context_passes_through_without_an_sdk(
    echo_pb: ModuleType, serve: Any
) -> None:
    """With no-op providers nothing is recorded, but a traced caller's context still reaches
    the services the handler calls (the API's non-recording spans carry it)."""
    propagator = TraceContextTextMapPropagator()
    noop = (trace.NoOpTracerProvider(), metrics.NoOpMeterProvider(), propagator)
    seen: list[str | bytes | None] = []

    class Probe(rpcfw.ServerInterceptor):
        async def start(self, context: rpcfw.CallContext) -> None:
            seen.append(context.invocation_metadata.get("traceparent"))

    backend = await serve(make_echo_service(echo_pb, "b"), Probe())
    async with rpcfw.Channel(
        backend.address, interceptors=[OpenTelemetryClientInterceptor(*noop)]
    ) as to_backend:

        class Frontend(type(make_echo_service(echo_pb, "a"))):  # type: ignore[misc]
            async def unary(self, request: Any, context: rpcfw.CallContext) -> Any:
                return await echo_pb.EchoStub(to_backend).unary(request)

        frontend = await serve(Frontend(), OpenTelemetryServerInterceptor(*noop))
        incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        async with rpcfw.Channel(frontend.address) as channel, asyncio.timeout(LIVENESS):
            await echo_pb.EchoStub(channel).unary(
                echo_pb.EchoRequest(message="x"), metadata={"traceparent": incoming}
            )
    assert seen == [incoming]


async def test_calls_refused_by_a_later_interceptor_are_traced(
    echo_pb: ModuleType, serve: Any, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """OTel first: the refused call has its span; OTel after the refusing interceptor: its
    start never ran, its end does nothing (no span, no hook failure)."""
    service = make_echo_service(echo_pb, "s")
    traced = await serve(service, telemetry.server(), TokenAuthServer({"s3cret"}))
    untraced = await serve(service, TokenAuthServer({"s3cret"}), telemetry.server())
    for server in (traced, untraced):
        async with rpcfw.Channel(server.address) as channel, asyncio.timeout(LIVENESS):
            with pytest.raises(rpcfw.RpcError) as info:
                await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest(message="x"))
            assert info.value.status is rpcfw.Status.UNAUTHENTICATED
    [served] = await telemetry.wait_spans(1)
    assert served.attributes is not None and served.attributes["rpc.grpc.status_code"] == 16
    assert served.status.status_code is StatusCode.UNSET
    [point] = telemetry.points("rpc.server.duration")
    assert point.count == 1
    assert not [r for r in caplog.records if "interceptor" in r.getMessage()]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("localhost:50051", {"server.address": "localhost", "server.port": 50051}),
        ("dns:///api.example.com:443", {"server.address": "api.example.com", "server.port": 443}),
        ("[::1]:8080", {"server.address": "::1", "server.port": 8080}),
        ("unix:///run/app.sock", {"server.address": "/run/app.sock"}),
        ("static:///10.0.0.1:1,10.0.0.2:1", {}),  # several servers: the peer's, at the end
        ("etcd://127.0.0.1:2379/billing", {}),
    ],
)
def test_server_address_from_the_channel_target(target: str, expected: dict[str, Any]) -> None:
    from rpcfw.otel._common import target_address

    assert target_address(target) == expected


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("127.0.0.1:5000", {"network.peer.address": "127.0.0.1", "network.peer.port": 5000}),
        ("::1:5000", {"network.peer.address": "::1", "network.peer.port": 5000}),
        ("[::1]:5000", {"network.peer.address": "::1", "network.peer.port": 5000}),
    ],
)
def test_network_peer_attributes(peer: str, expected: dict[str, Any]) -> None:
    from rpcfw.otel._common import peer_attributes

    assert peer_attributes(peer) == {"network.transport": "tcp", **expected}

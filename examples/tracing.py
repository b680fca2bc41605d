"""OpenTelemetry tracing across two services: a caller calls a gateway, which calls the Greeter.
One call is one trace of four spans (caller -> gateway -> gateway's call -> greeter), linked
through the W3C `traceparent` header in the calls' metadata.

    pip install 'rpcfw[otel]' opentelemetry-sdk
    rpcfw gen proto -I proto -o examples/gen     # once, from the repository root
    python examples/tracing.py

Spans go to an in-memory exporter here, to print them; use OTLP or the console exporter in a
real program.
"""

from __future__ import annotations

import asyncio

from gen.helloworld_rpcfw import GreeterBase, GreeterStub, HelloReply, HelloRequest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import rpcfw
from rpcfw.otel import OpenTelemetryClientInterceptor, OpenTelemetryServerInterceptor


class Greeter(GreeterBase):
    async def say_hello(self, request: HelloRequest, context: rpcfw.CallContext) -> HelloReply:
        return HelloReply(message=f"Hello, {request.name}!")


class Gateway(GreeterBase):
    def __init__(self, greeter: GreeterStub) -> None:
        self.greeter = greeter

    async def say_hello(self, request: HelloRequest, context: rpcfw.CallContext) -> HelloReply:
        return await self.greeter.say_hello(request, timeout=5)  # a child of this call's span


async def main(exporter: InMemorySpanExporter) -> None:
    traced_server = [OpenTelemetryServerInterceptor()]
    traced_client = [OpenTelemetryClientInterceptor()]
    greeter_server = rpcfw.Server([Greeter()], interceptors=traced_server)
    await greeter_server.start("127.0.0.1", 0)
    async with rpcfw.Channel(greeter_server.address, interceptors=traced_client) as to_greeter:
        gateway = Gateway(GreeterStub(to_greeter))
        gateway_server = rpcfw.Server([gateway], interceptors=traced_server)
        await gateway_server.start("127.0.0.1", 0)
        try:
            async with rpcfw.Channel(gateway_server.address, interceptors=traced_client) as channel:
                reply = await GreeterStub(channel).say_hello(HelloRequest(name="ann"), timeout=5)
                print(reply.message)
        finally:
            await gateway_server.stop(grace=1)
    await greeter_server.stop(grace=1)

    spans = sorted(exporter.get_finished_spans(), key=lambda span: span.start_time or 0)
    print("traces:", len({span.context.trace_id for span in spans if span.context}))
    for span in spans:
        parent = "root" if span.parent is None else "child"
        print(f"  {span.kind.name:6} {span.name} ({parent}, {span.status.status_code.name})")


if __name__ == "__main__":
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # the interceptors use the global providers by default
    asyncio.run(main(exporter))

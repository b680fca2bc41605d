"""The server interceptor: a SERVER span per call, child of the trace context in the call's
metadata and current while the handler runs, and the ``rpc.server.*`` metrics."""

from __future__ import annotations

from contextvars import Token
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanKind, StatusCode

from .._status import Status
from ..interceptors.base import SERVER_FAULTS, ServerInterceptor
from ._common import (
    MethodAttributes,
    OtelState,
    extract,
    message_event,
    peer_attributes,
)

if TYPE_CHECKING:
    from ..server import CallContext

__all__ = ["OpenTelemetryServerInterceptor"]


class _Call:
    __slots__ = ("bytes_received", "bytes_sent", "method", "span", "token")

    def __init__(self, span: trace.Span, token: Token[Context], method: MethodAttributes) -> None:
        self.span = span
        self.token = token
        self.method = method
        self.bytes_sent = 0
        self.bytes_received = 0


class OpenTelemetryServerInterceptor(ServerInterceptor, OtelState):
    """Traces and measures every call a server handles.

    ``tracer_provider`` / ``meter_provider``: where spans and measurements go (None: the
    global providers). ``propagator``: how the caller's trace context is read from the
    metadata (None: the global one, W3C ``traceparent`` / ``tracestate`` and ``baggage``
    unless configured otherwise). ``message_events``: an ``rpc.message`` event per message.

    The span is a child of the caller's span when the metadata carries one, and is the
    current span while the handler runs (in ``start`` and ``on_end``, which run in the
    handler's task), so calls the handler makes through an instrumented channel are its
    children. Put this interceptor first to trace calls that later interceptors refuse
    (auth); status ERROR only for UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
    UNAVAILABLE and DATA_LOSS, as the gRPC conventions say.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        propagator: TextMapPropagator | None = None,
        *,
        message_events: bool = False,
    ) -> None:
        self._setup("server", tracer_provider, meter_provider, propagator, message_events)

    async def start(self, context: CallContext) -> None:
        stats = context.stats
        if stats is None:  # not called by a server's dispatcher
            return
        method = self._methods.get(context.method)
        parent = extract(context.invocation_metadata, self._propagator)
        span = self._tracer.start_span(
            method.name,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={**method.attributes, **peer_attributes(context.peer)},
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        stats.scratch[self._key] = _Call(span, token, method)

    def on_receive(self, context: CallContext, message: Any) -> None:
        stats = context.stats
        state: _Call | None = stats.scratch.get(self._key) if stats is not None else None
        if stats is None or state is None:
            return
        size = stats.bytes_received - state.bytes_received
        state.bytes_received = stats.bytes_received
        self._instruments.request_size.record(size, state.method.attributes)
        if self._message_events:
            message_event(state.span, "RECEIVED", stats.messages_received, size)

    def on_send(self, context: CallContext, message: Any) -> None:
        stats = context.stats
        state: _Call | None = stats.scratch.get(self._key) if stats is not None else None
        if stats is None or state is None:
            return
        size = stats.bytes_sent - state.bytes_sent
        state.bytes_sent = stats.bytes_sent
        self._instruments.response_size.record(size, state.method.attributes)
        if self._message_events:
            message_event(state.span, "SENT", stats.messages_sent, size)

    def on_end(self, context: CallContext) -> None:
        stats = context.stats
        state: _Call | None = stats.scratch.pop(self._key, None) if stats is not None else None
        if stats is None or state is None:  # an interceptor before this one refused the call
            return
        try:
            status = context.status if context.status is not None else Status.CANCELLED
            code = status.value
            span = state.span
            if span.is_recording():
                span.set_attribute("rpc.grpc.status_code", code)
                if status in SERVER_FAULTS:
                    span.set_status(StatusCode.ERROR, context.status_message or status.name)
            span.end()
            attributes = state.method.with_status(code)
            instruments = self._instruments
            instruments.duration.record(stats.duration * 1000, attributes)
            instruments.requests_per_rpc.record(stats.messages_received, attributes)
            instruments.responses_per_rpc.record(stats.messages_sent, attributes)
        finally:
            otel_context.detach(state.token)

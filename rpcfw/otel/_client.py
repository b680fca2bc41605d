"""The client interceptor: a CLIENT span per call, trace context injected into its metadata,
and the ``rpc.client.*`` metrics."""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import SpanKind, StatusCode

from .._status import Status
from ..interceptors.base import ClientCallInfo, ClientInterceptor
from ._common import (
    MethodAttributes,
    OtelState,
    inject,
    message_event,
    peer_attributes,
    target_address,
)

__all__ = ["OpenTelemetryClientInterceptor"]


class _Call:
    __slots__ = ("bytes_received", "bytes_sent", "method", "span", "target_known")

    def __init__(self, span: trace.Span, method: MethodAttributes, target_known: bool) -> None:
        self.span = span
        self.method = method
        self.target_known = target_known  # server.address came from the target
        self.bytes_sent = 0
        self.bytes_received = 0


class OpenTelemetryClientInterceptor(ClientInterceptor, OtelState):
    """Traces and measures every call of a channel.

    ``tracer_provider`` / ``meter_provider``: where spans and measurements go (None: the
    global providers, ``opentelemetry.trace.set_tracer_provider`` & co.). ``propagator``: how
    the trace context goes into the metadata (None: the global one, W3C ``traceparent`` /
    ``tracestate`` and ``baggage`` unless configured otherwise). ``message_events``: add an
    ``rpc.message`` event per message to the span (off: it costs an event per message).

    The span starts in ``start`` as a child of the current span (a server handler's, say),
    and ends with the call: status ERROR for any status but OK, ``rpc.grpc.status_code``, the
    server's address (``server.address``/``server.port``, from the target when it names one
    server, else from the endpoint picked) and the endpoint's (``network.peer.*``).
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        propagator: TextMapPropagator | None = None,
        *,
        message_events: bool = False,
    ) -> None:
        self._setup("client", tracer_provider, meter_provider, propagator, message_events)

    async def start(self, call: ClientCallInfo) -> None:
        method = self._methods.get(call.method)
        server = target_address(call.target)
        span = self._tracer.start_span(
            method.name, kind=SpanKind.CLIENT, attributes={**method.attributes, **server}
        )
        call.scratch[self._key] = _Call(span, method, bool(server))
        call.metadata = inject(call.metadata, trace.set_span_in_context(span), self._propagator)

    def on_send(self, call: ClientCallInfo, message: Any) -> None:
        state: _Call | None = call.scratch.get(self._key)
        if state is None:
            return
        # the counts start again at 0 when a refused stream is retried on another connection
        size = call.bytes_sent if call.messages_sent == 1 else call.bytes_sent - state.bytes_sent
        state.bytes_sent = call.bytes_sent
        self._instruments.request_size.record(size, state.method.attributes)
        if self._message_events:
            message_event(state.span, "SENT", call.messages_sent, size)

    def on_receive(self, call: ClientCallInfo, message: Any) -> None:
        state: _Call | None = call.scratch.get(self._key)
        if state is None:
            return
        size = call.bytes_received - state.bytes_received
        state.bytes_received = call.bytes_received
        self._instruments.response_size.record(size, state.method.attributes)
        if self._message_events:
            message_event(state.span, "RECEIVED", call.messages_received, size)

    def on_end(self, call: ClientCallInfo) -> None:
        state: _Call | None = call.scratch.pop(self._key, None)
        if state is None:  # an interceptor before this one ended the call in its start
            return
        status = call.status if call.status is not None else Status.UNKNOWN
        code = status.value
        span = state.span
        if span.is_recording():
            span.set_attribute("rpc.grpc.status_code", code)
            if call.peer is not None:
                peer = peer_attributes(call.peer)
                span.set_attributes(peer)
                if not state.target_known and "network.peer.address" in peer:
                    span.set_attribute("server.address", peer["network.peer.address"])
                    if "network.peer.port" in peer:
                        span.set_attribute("server.port", peer["network.peer.port"])
            if status is not Status.OK:
                message = call.error.message if call.error is not None else None
                span.set_status(StatusCode.ERROR, message or status.name)
        span.end()
        attributes = state.method.with_status(code)
        instruments = self._instruments
        instruments.duration.record(call.duration * 1000, attributes)
        instruments.requests_per_rpc.record(call.messages_sent, attributes)
        instruments.responses_per_rpc.record(call.messages_received, attributes)

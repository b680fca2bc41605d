"""What the client and server interceptors share: per-method attributes, the instruments,
the metadata carrier and address parsing."""

from __future__ import annotations

import functools

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.util.types import AttributeValue

from ..__about__ import __version__
from ..metadata import Metadata
from ..resolver.target import parse_address, parse_target

__all__ = [
    "SCOPE",
    "Instruments",
    "extract",
    "MethodAttributes",
    "MethodCache",
    "inject",
    "message_event",
    "metadata_getter",
    "peer_attributes",
    "target_address",
    "OtelState",
    "tracer_and_meter",
]

#: instrumentation scope of rpcfw's tracer and meter
SCOPE = "rpcfw.otel"
_MAX_METHODS = 1024  # bound on the per-method attribute cache (method paths are few)

Attributes = dict[str, AttributeValue]


class MethodAttributes:
    """The span name and the attribute sets of one method path (built once, shared by every
    call of the method: neither the SDK's spans nor its metrics keep a reference to them)."""

    __slots__ = ("_by_status", "attributes", "name")

    def __init__(self, path: str) -> None:
        name = path[1:] if path.startswith("/") else path
        service, _, method = name.rpartition("/")
        #: ``{rpc.service}/{rpc.method}``, e.g. ``helloworld.Greeter/SayHello``
        self.name = name or "grpc"
        #: rpc.system, rpc.service, rpc.method: the span's and the size metrics' attributes
        self.attributes: Attributes = {
            "rpc.system": "grpc",
            "rpc.service": service,
            "rpc.method": method,
        }
        self._by_status: dict[int, Attributes] = {}

    def with_status(self, code: int) -> Attributes:
        """The attributes plus ``rpc.grpc.status_code`` (duration and per-RPC counts)."""
        attributes = self._by_status.get(code)
        if attributes is None:
            attributes = {**self.attributes, "rpc.grpc.status_code": code}
            self._by_status[code] = attributes
        return attributes


class MethodCache:
    def __init__(self) -> None:
        self._methods: dict[str, MethodAttributes] = {}

    def get(self, path: str) -> MethodAttributes:
        method = self._methods.get(path)
        if method is None:
            if len(self._methods) >= _MAX_METHODS:  # a client calling made-up paths
                self._methods.clear()
            method = self._methods[path] = MethodAttributes(path)
        return method


class Instruments:
    """The semantic-convention RPC histograms of one side (``client`` or ``server``)."""

    __slots__ = (
        "duration",
        "request_size",
        "requests_per_rpc",
        "response_size",
        "responses_per_rpc",
    )

    def __init__(self, meter: metrics.Meter, side: str) -> None:
        direction = "outbound" if side == "client" else "inbound"
        self.duration = meter.create_histogram(
            f"rpc.{side}.duration",
            unit="ms",
            description=f"Measures the duration of {direction} RPC.",
        )
        self.request_size = meter.create_histogram(
            f"rpc.{side}.request.size",
            unit="By",
            description="Measures the size of RPC request messages (uncompressed).",
        )
        self.response_size = meter.create_histogram(
            f"rpc.{side}.response.size",
            unit="By",
            description="Measures the size of RPC response messages (uncompressed).",
        )
        self.requests_per_rpc = meter.create_histogram(
            f"rpc.{side}.requests_per_rpc",
            unit="{count}",
            description="Measures the number of messages received per RPC."
            if side == "server"
            else "Measures the number of messages sent per RPC.",
        )
        self.responses_per_rpc = meter.create_histogram(
            f"rpc.{side}.responses_per_rpc",
            unit="{count}",
            description="Measures the number of messages sent per RPC."
            if side == "server"
            else "Measures the number of messages received per RPC.",
        )


def tracer_and_meter(
    tracer_provider: trace.TracerProvider | None, meter_provider: metrics.MeterProvider | None
) -> tuple[trace.Tracer, metrics.Meter]:
    """rpcfw's tracer and meter from the providers given (None: the global ones)."""
    tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
    meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
    return tracer, meter


class _MetadataGetter(Getter[Metadata]):
    """Reads propagation fields from rpcfw metadata (text values only)."""

    def get(self, carrier: Metadata, key: str) -> list[str] | None:
        values = [v for k, v in carrier if k == key and isinstance(v, str)]
        return values or None

    def keys(self, carrier: Metadata) -> list[str]:
        return carrier.keys()


metadata_getter = _MetadataGetter()


def inject(metadata: Metadata, context: Context, propagator: TextMapPropagator | None) -> Metadata:
    """``metadata`` with the propagator's fields for ``context`` (replacing any there)."""
    carrier: dict[str, str] = {}
    if propagator is None:
        propagate.inject(carrier, context)  # the global propagator (W3C trace context + baggage)
    else:
        propagator.inject(carrier, context)
    for key, value in carrier.items():
        metadata = metadata.replaced(key.lower(), value)
    return metadata


def _split(address: str) -> tuple[str, int | None, str]:
    """``(address, port, transport)`` of a ``host:port`` / ``[v6]:port`` / unix peer."""
    if address.startswith(("unix:", "unix-abstract:")):
        return address.partition(":")[2], None, "unix"
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return address, None, "tcp"
    return host.strip("[]"), int(port), "tcp"


@functools.lru_cache(maxsize=1024)
def peer_attributes(peer: str) -> Attributes:
    """``network.peer.address`` / ``network.peer.port`` / ``network.transport`` of a peer."""
    address, port, transport = _split(peer)
    attributes: Attributes = {"network.transport": transport}
    if address:
        attributes["network.peer.address"] = address
    if port is not None:
        attributes["network.peer.port"] = port
    return attributes


@functools.lru_cache(maxsize=256)
def target_address(target: str) -> Attributes:
    """``server.address`` / ``server.port`` of a channel target naming one server
    (``host:port``, ``dns:///host:port``, a unix socket), else empty (then the peer's)."""
    try:
        parsed = parse_target(target)
        if parsed.scheme in ("unix", "unix-abstract"):
            return {"server.address": parsed.endpoint}
        if parsed.scheme not in ("static", "dns") or "," in parsed.endpoint:
            return {}
        endpoint = parse_address(parsed.endpoint)
    except ValueError:
        return {}
    return {"server.address": endpoint.host, "server.port": endpoint.port}


def message_event(span: trace.Span, kind: str, index: int, size: int) -> None:
    """An ``rpc.message`` event (``SENT`` / ``RECEIVED``, 1-based id, uncompressed size)."""
    span.add_event(
        "rpc.message",
        {"rpc.message.type": kind, "rpc.message.id": index, "rpc.message.uncompressed_size": size},
    )


def extract(metadata: Metadata, propagator: TextMapPropagator | None) -> Context:
    """The (remote parent) context the propagator finds in ``metadata``."""
    if propagator is None:
        return propagate.extract(metadata, getter=metadata_getter)
    return propagator.extract(metadata, getter=metadata_getter)


class OtelState:
    """What both interceptors keep: the tracer, their instruments, the propagator (None: the
    global one), per-method attributes, and their key in a call's scratch dict."""

    _tracer: trace.Tracer
    _instruments: Instruments
    _propagator: TextMapPropagator | None
    _message_events: bool
    _methods: MethodCache
    _key: str

    def _setup(
        self,
        side: str,
        tracer_provider: trace.TracerProvider | None,
        meter_provider: metrics.MeterProvider | None,
        propagator: TextMapPropagator | None,
        message_events: bool,
    ) -> None:
        self._tracer, meter = tracer_and_meter(tracer_provider, meter_provider)
        self._instruments = Instruments(meter, side)
        self._propagator = propagator
        self._message_events = message_events
        self._methods = MethodCache()
        self._key = f"rpcfw.otel.{id(self):x}"  # per-call state in the scratch dict

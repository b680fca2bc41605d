"""OpenTelemetry tracing and metrics for rpcfw channels and servers (``pip install
'rpcfw[otel]'``; needs only ``opentelemetry-api``, configure the SDK in your application).

- ``OpenTelemetryClientInterceptor``: ``rpcfw.Channel(target, interceptors=[...])``
- ``OpenTelemetryServerInterceptor``: ``rpcfw.Server(services, interceptors=[...])``

One span per call (``{rpc.service}/{rpc.method}``, kind CLIENT / SERVER, the ``rpc.*``
attributes of the gRPC semantic conventions), W3C trace context in the call's metadata (so
traces cross rpcfw, grpcio, grpc-go and any other gRPC peer that propagates it), and the
``rpc.{client,server}.duration`` (ms), ``request.size`` / ``response.size`` (bytes, per
message) and ``requests_per_rpc`` / ``responses_per_rpc`` histograms.

The server interceptor makes its span current while the handler runs: calls the handler makes
through a channel with the client interceptor become its children.
"""

try:
    import opentelemetry.trace  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("rpcfw.otel needs the OpenTelemetry API: pip install 'rpcfw[otel]'") from exc

from ._client import OpenTelemetryClientInterceptor
from ._server import OpenTelemetryServerInterceptor

__all__ = ["OpenTelemetryClientInterceptor", "OpenTelemetryServerInterceptor"]

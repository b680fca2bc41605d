"""rpcfw: an async RPC framework for Python, wire-compatible with gRPC.

The public API is what ``__all__`` lists; everything else is private.

Import order matters once: ``._method`` and ``._status`` come first, because rpcfw's own
generated services (health, reflection: ``import rpcfw``, as all generated code does) use
``rpcfw.MethodSpec``, ``rpcfw.Cardinality`` and ``rpcfw.ServiceBase`` while rpcfw is still
being imported. Their annotations are not evaluated at import, so nothing else is needed.
"""

from .__about__ import __version__
from ._method import (
    CallCredentials,
    CallOptions,
    Message,
    MethodSpec,
    ProtoFiles,
    ServerMethod,
    ServiceBase,
)
from ._rich_status import RichStatus
from ._status import Cardinality, Status
from .balancer import ConnectivityState, Endpoint, register_balancer
from .client import (
    BidiStream,
    CapturedCall,
    Channel,
    ClientStreamCall,
    ServerStreamCall,
    UnaryCall,
    capture_call,
)
from .compression import Compression
from .errors import (
    ChannelClosedError,
    MessageTooLargeError,
    RpcError,
    RpcfwError,
    StreamRefusedError,
)
from .health import HealthService, ServingStatus
from .interceptors import ClientInterceptor, ServerInterceptor
from .metadata import Metadata, MetadataLike
from .policy import (
    BackoffConfig,
    FailurePercentageEjection,
    OutlierDetectionConfig,
    SuccessRateEjection,
)
from .registry import Instance, LeaseRegistrar, LocalStore, Registrar
from .registry.base import Registration
from .resolver import register_resolver
from .server import CallContext, Server, ServerStats
from .tls import ChannelTLS, PeerIdentity, ServerTLS
from .transport import H2Config
from .transport.keepalive import ConnectionAge, KeepaliveConfig

__all__ = (
    "BackoffConfig",
    "BidiStream",
    "CallContext",
    "CallCredentials",
    "CallOptions",
    "CapturedCall",
    "Cardinality",
    "Channel",
    "ChannelClosedError",
    "ChannelTLS",
    "ClientInterceptor",
    "ClientStreamCall",
    "Compression",
    "ConnectionAge",
    "ConnectivityState",
    "Endpoint",
    "FailurePercentageEjection",
    "H2Config",
    "HealthService",
    "KeepaliveConfig",
    "Instance",
    "LeaseRegistrar",
    "LocalStore",
    "Message",
    "MessageTooLargeError",
    "Metadata",
    "MetadataLike",
    "MethodSpec",
    "OutlierDetectionConfig",
    "PeerIdentity",
    "ProtoFiles",
    "Registrar",
    "Registration",
    "RichStatus",
    "RpcError",
    "RpcfwError",
    "Server",
    "ServerMethod",
    "ServerStats",
    "ServerStreamCall",
    "ServerTLS",
    "ServerInterceptor",
    "ServiceBase",
    "ServingStatus",
    "Status",
    "StreamRefusedError",
    "SuccessRateEjection",
    "UnaryCall",
    "capture_call",
    "register_balancer",
    "register_resolver",
    "__version__",
)

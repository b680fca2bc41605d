from __future__ import annotations

import rpcfw

EXPECTED = {
    "Instance",
    "LeaseRegistrar",
    "LocalStore",
    "Registrar",
    "Registration",
    "BackoffConfig",
    "OutlierDetectionConfig",
    "FailurePercentageEjection",
    "SuccessRateEjection",
    "ConnectivityState",
    "Endpoint",
    "register_balancer",
    "register_resolver",
    "BidiStream",
    "UnaryCall",
    "ServerStreamCall",
    "ClientStreamCall",
    "RichStatus",
    "CapturedCall",
    "capture_call",
    "ConnectionAge",
    "H2Config",
    "KeepaliveConfig",
    "ServerStats",
    "CallContext",
    "CallOptions",
    "Cardinality",
    "Channel",
    "ChannelClosedError",
    "Compression",
    "CallCredentials",
    "ChannelTLS",
    "PeerIdentity",
    "ServerTLS",
    "ClientInterceptor",
    "ServerInterceptor",
    "HealthService",
    "Message",
    "MessageTooLargeError",
    "Metadata",
    "MetadataLike",
    "MethodSpec",
    "ProtoFiles",
    "RpcError",
    "RpcfwError",
    "Server",
    "ServerMethod",
    "ServiceBase",
    "ServingStatus",
    "Status",
    "StreamRefusedError",
    "__version__",
}


def test_public_api_is_a_curated_tuple() -> None:
    assert isinstance(rpcfw.__all__, tuple)
    assert set(rpcfw.__all__) == EXPECTED, "update EXPECTED (and the README) when the API changes"
    for name in rpcfw.__all__:
        assert hasattr(rpcfw, name), name


def test_error_tree_roots_at_rpcfw_error() -> None:
    for cls in (
        rpcfw.RpcError,
        rpcfw.MessageTooLargeError,
        rpcfw.ChannelClosedError,
        rpcfw.StreamRefusedError,
    ):
        assert issubclass(cls, rpcfw.RpcfwError)

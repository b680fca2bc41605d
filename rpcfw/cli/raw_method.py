"""Calls with bytes in and out: a method spec whose messages are the serialized bytes, so
rpcfw's Channel carries whatever a dynamic (descriptor-built) message encodes to."""

from __future__ import annotations

from google.protobuf import descriptor

from .._method import MethodSpec, ReqT, RespT
from .._status import Cardinality

__all__ = ["RawMessage", "method_spec", "raw_spec"]


class RawMessage:
    """Serialized message bytes, passed through as they are."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def SerializeToString(self) -> bytes:
        return self.data

    @classmethod
    def FromString(cls, data: bytes) -> RawMessage:
        return cls(bytes(data))


def method_spec(
    method: descriptor.MethodDescriptor, request_type: type[ReqT], response_type: type[RespT]
) -> MethodSpec[ReqT, RespT]:
    """The spec to call ``method`` (``/pkg.Service/Method``, its call kind) with these
    message types."""
    kind = Cardinality((bool(method.client_streaming), bool(method.server_streaming)))
    path = f"/{method.containing_service.full_name}/{method.name}"
    return MethodSpec(path, kind, request_type, response_type)


def raw_spec(method: descriptor.MethodDescriptor) -> MethodSpec[RawMessage, RawMessage]:
    """The spec to call ``method`` with bytes."""
    return method_spec(method, RawMessage, RawMessage)

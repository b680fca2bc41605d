"""v1 and v1alpha of the reflection protocol: the same messages under two package names.

rpcfw answers (and asks) in v1's messages and converts v1alpha's through the wire format, which
the two share field for field.
"""

from __future__ import annotations

from typing import TypeVar

from .._proto.grpc.reflection.v1 import reflection_rpcfw as v1
from .._proto.grpc.reflection.v1alpha import reflection_rpcfw as v1alpha

__all__ = ["V1ALPHA_SERVICE", "V1_SERVICE", "convert", "v1", "v1alpha"]

V1_SERVICE = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE = "grpc.reflection.v1alpha.ServerReflection"

_Message = (
    v1.ServerReflectionRequest
    | v1.ServerReflectionResponse
    | v1alpha.ServerReflectionRequest
    | v1alpha.ServerReflectionResponse
)
T = TypeVar(
    "T",
    v1.ServerReflectionRequest,
    v1.ServerReflectionResponse,
    v1alpha.ServerReflectionRequest,
    v1alpha.ServerReflectionResponse,
)


def convert(message: _Message, into: type[T]) -> T:
    """``message`` as the same message of the other version (or the same one)."""
    return into.FromString(message.SerializeToString())

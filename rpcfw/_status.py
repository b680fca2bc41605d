"""gRPC status codes and call cardinality, shared by client, server and generated code."""

from __future__ import annotations

import enum

from grpclib.const import Status

__all__ = ["Cardinality", "Status"]


class Cardinality(enum.Enum):
    """The four gRPC call kinds: whether the client and the server stream."""

    UNARY_UNARY = (False, False)
    UNARY_STREAM = (False, True)
    STREAM_UNARY = (True, False)
    STREAM_STREAM = (True, True)

    @property
    def client_streaming(self) -> bool:
        return self.value[0]

    @property
    def server_streaming(self) -> bool:
        return self.value[1]

"""What generated code hands to the runtime: method descriptors, call options, service bases."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypedDict, TypeVar

from ._descriptors import ProtoFiles
from ._status import Cardinality
from .compression import Compression
from .metadata import MetadataLike

__all__ = [
    "CallCredentials",
    "CallOptions",
    "Message",
    "MethodSpec",
    "ProtoFiles",
    "ServerMethod",
    "ServiceBase",
]


class Message(Protocol):
    """Any protobuf message: betterproto2 dataclasses and protobuf (upb) classes both fit."""

    def SerializeToString(self) -> bytes:
        """The message in the protobuf wire format."""


ReqT = TypeVar("ReqT", bound=Message)
RespT = TypeVar("RespT", bound=Message)


@dataclass(frozen=True, slots=True)
class MethodSpec(Generic[ReqT, RespT]):
    """One RPC method, as generated code describes it.

    ``path`` is the HTTP/2 ``:path``, e.g. ``/helloworld.Greeter/SayHello``.
    """

    path: str
    cardinality: Cardinality
    request_type: type[ReqT]
    response_type: type[RespT]
    idempotent: bool = False
    decode_request: Callable[[bytes], ReqT] = field(init=False, repr=False, compare=False)
    decode_response: Callable[[bytes], RespT] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for attr, cls in (
            ("decode_request", self.request_type),
            ("decode_response", self.response_type),
        ):
            decode = getattr(cls, "FromString", None)
            if decode is None:
                raise TypeError(f"{cls!r} is not a protobuf message class (no FromString)")
            object.__setattr__(self, attr, decode)

    @property
    def service(self) -> str:
        """The full service name of the method's path (``helloworld.Greeter``)."""
        return self.path.split("/")[1]

    @property
    def method(self) -> str:
        """The method name of the method's path (``SayHello``)."""
        return self.path.rsplit("/", 1)[1]


#: ``credentials(method_path) -> metadata`` (or an awaitable of it): a bearer token, say
CallCredentials = Callable[[str], MetadataLike | Awaitable[MetadataLike]]


class CallOptions(TypedDict, total=False):
    """Keyword options every generated stub method accepts (``**options``).

    timeout: seconds until the call's deadline (DEADLINE_EXCEEDED after it).
    metadata: request metadata; keys ending in ``-bin`` take bytes.
    wait_for_ready: wait for a ready endpoint until the deadline instead of failing fast.
    hash_key: the key consistent-hash balancing uses for this call.
    call_credentials: metadata for this call from a callable (see ``Channel``).
    compression: compress this call's request messages ("gzip", "deflate", a
        ``rpcfw.Compression``, or "identity" for none); default: the channel's.
    """

    timeout: float | None
    metadata: MetadataLike | None
    wait_for_ready: bool | None
    hash_key: str | bytes | None
    compression: Compression | str | None
    call_credentials: CallCredentials | None


@dataclass(frozen=True, slots=True)
class ServerMethod(Generic[ReqT, RespT]):
    """A method implementation bound to its descriptor (what a server dispatches to)."""

    spec: MethodSpec[ReqT, RespT]
    implementation: Callable[..., Any]


class ServiceBase(abc.ABC):
    """Base of every generated ``<Service>Base`` class.

    Subclasses set ``__rpcfw_service__`` (the full service name) and implement
    ``__rpcfw_methods__`` (generated), mapping each ``:path`` to its implementation.
    ``__rpcfw_files__`` (generated) holds the descriptors of the .proto file declaring the
    service and of its imports, which server reflection serves; None (code generated before
    it existed, or written by hand) leaves the service listed but not described.
    """

    __rpcfw_service__: ClassVar[str]
    __rpcfw_files__: ClassVar[ProtoFiles | None] = None

    @abc.abstractmethod
    def __rpcfw_methods__(self) -> Mapping[str, ServerMethod[Any, Any]]:
        raise NotImplementedError

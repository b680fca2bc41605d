"""gRPC server reflection (``grpc.reflection.v1`` and ``v1alpha``): server and client.

Server side: ``rpcfw.Server(services, reflection=True)`` serves both versions of
``ServerReflection``, describing every service of the server (health and reflection included)
from the descriptors their generated code carries (``__rpcfw_files__``, an
:class:`rpcfw.ProtoFiles`): the .proto file declaring the service and everything it imports.
It is off by default, as in grpc-go and grpcio: it shows the whole API schema to any client.
:func:`reflection_services` makes the two services for a server composed by hand.

Client side: :class:`ReflectionClient` asks any gRPC server (v1, else v1alpha) for its
services and file descriptors; :func:`build_pool` turns those into a protobuf
``DescriptorPool`` to look types up and build dynamic messages.
"""

from ._client import ReflectionClient, ReflectionError
from ._index import DescriptorIndex
from ._pool import build_pool
from ._service import ReflectionService, ReflectionServiceV1Alpha, reflection_services
from ._versions import V1_SERVICE, V1ALPHA_SERVICE

__all__ = [
    "V1ALPHA_SERVICE",
    "V1_SERVICE",
    "DescriptorIndex",
    "ReflectionClient",
    "ReflectionError",
    "ReflectionService",
    "ReflectionServiceV1Alpha",
    "build_pool",
    "reflection_services",
]

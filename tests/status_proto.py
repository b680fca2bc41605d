"""google.rpc.Status as a real protobuf message, built from a descriptor in a private pool
(googleapis-common-protos is not a dependency): an encoder and decoder independent of rpcfw's
``RichStatus`` for tests, and what a grpcio server or client would use."""

from __future__ import annotations

from typing import Any

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

__all__ = ["StatusProto"]


def _status_class() -> Any:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(
        name="google/rpc/status.proto",
        package="google.rpc",
        syntax="proto3",
        dependency=["google/protobuf/any.proto"],
    )
    message = proto.message_type.add(name="Status")
    fields = descriptor_pb2.FieldDescriptorProto
    message.field.add(name="code", number=1, type=fields.TYPE_INT32, label=fields.LABEL_OPTIONAL)
    message.field.add(
        name="message", number=2, type=fields.TYPE_STRING, label=fields.LABEL_OPTIONAL
    )
    message.field.add(
        name="details",
        number=3,
        type=fields.TYPE_MESSAGE,
        label=fields.LABEL_REPEATED,
        type_name=".google.protobuf.Any",
    )
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


#: ``StatusProto(code=..., message=..., details=[...])``; ``details.add().Pack(message)``
StatusProto: Any = _status_class()

"""What the generator knows about a .proto file: its services and the types it defines.

No IO, no rendering.

Built from ``FileDescriptorProto`` messages (as protoc hands them to a plugin, or as a
``FileDescriptorSet`` holds them).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from google.protobuf import descriptor_pb2

__all__ = [
    "Cardinality",
    "MessageRef",
    "Method",
    "ProtoFile",
    "Service",
    "TypeIndex",
    "build_file",
    "build_files",
    "clean_comment",
]

# Field numbers used in SourceCodeInfo paths.
_FILE_SERVICE = 6  # FileDescriptorProto.service
_SERVICE_METHOD = 2  # ServiceDescriptorProto.method

_IDEMPOTENT_LEVELS = frozenset(
    {
        descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
        descriptor_pb2.MethodOptions.IDEMPOTENT,
    }
)


class Cardinality(enum.Enum):
    """The four gRPC call kinds; the names match ``rpcfw.Cardinality``."""

    UNARY_UNARY = (False, False)
    UNARY_STREAM = (False, True)
    STREAM_UNARY = (True, False)
    STREAM_STREAM = (True, True)

    @classmethod
    def of(cls, client_streaming: bool, server_streaming: bool) -> Cardinality:
        return cls((bool(client_streaming), bool(server_streaming)))

    @property
    def client_streaming(self) -> bool:
        return self.value[0]

    @property
    def server_streaming(self) -> bool:
        return self.value[1]


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message type (as referenced by a method), or an enum type (as a file defines it).

    ``full_name`` has no leading dot (``common.v1.Page.Cursor``); ``local_name`` is the
    name inside its package (``Page.Cursor``); ``file`` is the .proto file defining it.
    """

    full_name: str
    package: str
    local_name: str
    file: str

    @property
    def is_nested(self) -> bool:
        return "." in self.local_name


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    input: MessageRef
    output: MessageRef
    cardinality: Cardinality
    comment: str = ""
    deprecated: bool = False
    idempotent: bool = False


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    full_name: str
    methods: tuple[Method, ...]
    comment: str = ""
    deprecated: bool = False

    def path(self, method: Method) -> str:
        """The HTTP/2 ``:path`` of a call, e.g. ``/helloworld.Greeter/SayHello``."""
        return f"/{self.full_name}/{method.name}"


@dataclass(frozen=True, slots=True)
class ProtoFile:
    name: str
    package: str
    services: tuple[Service, ...]
    # every message and enum the file defines, nested ones too (not map entries), in order
    types: tuple[MessageRef, ...] = ()

    def message_refs(self) -> list[MessageRef]:
        """Every message the services use, in first-use order, without duplicates."""
        seen: dict[str, MessageRef] = {}
        for service in self.services:
            for method in service.methods:
                for ref in (method.input, method.output):
                    seen.setdefault(ref.full_name, ref)
        return list(seen.values())


class TypeIndex:
    """Full message name -> where it is defined, over a set of files."""

    def __init__(self, files: Iterable[descriptor_pb2.FileDescriptorProto]) -> None:
        self._refs: dict[str, MessageRef] = {}
        for proto in files:
            for local_name in _walk_messages(proto.message_type, ""):
                full = f"{proto.package}.{local_name}" if proto.package else local_name
                self._refs[full] = MessageRef(full, proto.package, local_name, proto.name)

    def resolve(self, type_name: str) -> MessageRef:
        key = type_name.lstrip(".")
        try:
            return self._refs[key]
        except KeyError:
            raise LookupError(f"unknown message type {type_name!r}") from None


def _defined_types(proto: descriptor_pb2.FileDescriptorProto) -> tuple[MessageRef, ...]:
    """The file's messages and enums, depth first in declaration order; map entries left out
    (betterproto2 has no class for them)."""

    def walk(
        messages: Iterable[descriptor_pb2.DescriptorProto],
        enums: Iterable[descriptor_pb2.EnumDescriptorProto],
        prefix: str,
    ) -> Iterator[str]:
        yield from (f"{prefix}{enum.name}" for enum in enums)
        for message in messages:
            if not message.options.map_entry:
                yield f"{prefix}{message.name}"
                yield from walk(message.nested_type, message.enum_type, f"{prefix}{message.name}.")

    pkg = proto.package
    return tuple(
        MessageRef(f"{pkg}.{local}" if pkg else local, pkg, local, proto.name)
        for local in walk(proto.message_type, proto.enum_type, "")
    )


def _walk_messages(
    messages: Iterable[descriptor_pb2.DescriptorProto], prefix: str
) -> Iterator[str]:
    for message in messages:
        name = f"{prefix}{message.name}"
        yield name
        yield from _walk_messages(message.nested_type, f"{name}.")


def clean_comment(text: str) -> str:
    """Normalise a protoc comment: drop the one space after ``//``, trailing blanks, CRs."""
    lines = text.replace("\r", "").split("\n")
    lines = [line[1:] if line.startswith(" ") else line for line in lines]
    lines = [line.rstrip() for line in lines]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def _comments(proto: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    found: dict[tuple[int, ...], str] = {}
    for location in proto.source_code_info.location:
        text = location.leading_comments or location.trailing_comments
        if text.strip():
            found[tuple(location.path)] = clean_comment(text)
    return found


def build_file(proto: descriptor_pb2.FileDescriptorProto, index: TypeIndex) -> ProtoFile:
    comments = _comments(proto)
    services = []
    for s_idx, service in enumerate(proto.service):
        full_name = f"{proto.package}.{service.name}" if proto.package else service.name
        methods = []
        for m_idx, method in enumerate(service.method):
            path = (_FILE_SERVICE, s_idx, _SERVICE_METHOD, m_idx)
            methods.append(
                Method(
                    name=method.name,
                    input=index.resolve(method.input_type),
                    output=index.resolve(method.output_type),
                    cardinality=Cardinality.of(method.client_streaming, method.server_streaming),
                    comment=comments.get(path, ""),
                    deprecated=method.options.deprecated,
                    idempotent=method.options.idempotency_level in _IDEMPOTENT_LEVELS,
                )
            )
        services.append(
            Service(
                name=service.name,
                full_name=full_name,
                methods=tuple(methods),
                comment=comments.get((_FILE_SERVICE, s_idx), ""),
                deprecated=service.options.deprecated,
            )
        )
    return ProtoFile(proto.name, proto.package, tuple(services), _defined_types(proto))


def build_files(
    protos: Sequence[descriptor_pb2.FileDescriptorProto], to_generate: Iterable[str]
) -> list[ProtoFile]:
    """Model the files named in ``to_generate``; ``protos`` must hold their dependencies."""
    index = TypeIndex(protos)
    by_name = {proto.name: proto for proto in protos}
    return [build_file(by_name[name], index) for name in to_generate]

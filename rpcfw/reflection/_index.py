"""What server reflection knows: the files, symbols and extensions of a server's services."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from google.protobuf import descriptor_pb2

from .._method import ServiceBase

__all__ = ["DescriptorIndex"]

log = logging.getLogger("rpcfw.reflection")


class DescriptorIndex:
    """The descriptors of a set of services (their ``__rpcfw_files__``), looked up as server
    reflection asks: by file name, by symbol, by extension.

    Lookups return the serialized ``FileDescriptorProto`` of the file found first, then those
    of every file it imports, transitively (as far as the services brought them), or None
    when nothing matches. A service without descriptors is listed but not described. When two
    services bring different descriptors under one file name, the first is kept.
    """

    def __init__(self, services: Iterable[type[ServiceBase]]) -> None:
        names: set[str] = set()
        self._files: dict[str, bytes] = {}
        self._imports: dict[str, tuple[str, ...]] = {}
        self._symbols: dict[str, str] = {}  # full name -> file
        self._messages: set[str] = set()
        self._extensions: dict[tuple[str, int], str] = {}  # (extendee, number) -> file
        for service in services:
            names.add(service.__rpcfw_service__)
            files = service.__rpcfw_files__
            for serialized in files.serialized if files is not None else ():
                self._add(serialized)
        self.services: tuple[str, ...] = tuple(sorted(names))

    def _add(self, serialized: bytes) -> None:
        proto = descriptor_pb2.FileDescriptorProto.FromString(serialized)
        known = self._files.get(proto.name)
        if known is not None:
            if known != serialized:
                log.warning(
                    "reflection: two different descriptors of %s, keeping the first", proto.name
                )
            return
        self._files[proto.name] = serialized
        self._imports[proto.name] = tuple(proto.dependency)
        prefix = f"{proto.package}." if proto.package else ""
        for symbol, kind in _symbols(proto, prefix):
            self._symbols.setdefault(symbol, proto.name)
            if kind == "message":
                self._messages.add(symbol)
        for extension in _extensions(proto):
            key = (extension.extendee.lstrip("."), extension.number)
            self._extensions.setdefault(key, proto.name)

    def file_by_name(self, name: str) -> list[bytes] | None:
        """The file named ``name`` (then its imports)."""
        if name not in self._files:
            return None
        order: dict[str, None] = {}  # insertion-ordered set
        stack = [name]
        while stack:
            current = stack.pop()
            if current in order or current not in self._files:
                continue
            order[current] = None
            stack.extend(reversed(self._imports[current]))
        return [self._files[file] for file in order]

    def file_containing_symbol(self, symbol: str) -> list[bytes] | None:
        """The file declaring ``symbol`` (``pkg.Message``, ``pkg.Service.Method``, a field,
        an enum or enum value, an extension; no leading dot), then its imports."""
        file = self._symbols.get(symbol.lstrip("."))
        return None if file is None else self.file_by_name(file)

    def file_containing_extension(self, extendee: str, number: int) -> list[bytes] | None:
        """The file declaring extension ``number`` of message ``extendee``, then its imports."""
        file = self._extensions.get((extendee.lstrip("."), number))
        return None if file is None else self.file_by_name(file)

    def extension_numbers(self, extendee: str) -> list[int] | None:
        """The numbers of the known extensions of message ``extendee`` (sorted), or None when
        the message is unknown."""
        extendee = extendee.lstrip(".")
        if extendee not in self._messages:
            return None
        return sorted(number for (name, number) in self._extensions if name == extendee)


def _symbols(proto: descriptor_pb2.FileDescriptorProto, prefix: str) -> Iterator[tuple[str, str]]:
    """(full name, kind) of everything ``proto`` declares (kinds: message, other)."""
    yield from _message_symbols(proto.message_type, prefix)
    for enum in proto.enum_type:
        yield from _enum_symbols(enum, prefix)
    for extension in proto.extension:
        yield prefix + extension.name, "other"
    for service in proto.service:
        yield prefix + service.name, "other"
        for method in service.method:
            yield f"{prefix}{service.name}.{method.name}", "other"


def _message_symbols(
    messages: Iterable[descriptor_pb2.DescriptorProto], prefix: str
) -> Iterator[tuple[str, str]]:
    for message in messages:
        name = prefix + message.name
        yield name, "message"
        for field in (*message.field, *message.extension):
            yield f"{name}.{field.name}", "other"
        for oneof in message.oneof_decl:
            yield f"{name}.{oneof.name}", "other"
        for enum in message.enum_type:
            yield from _enum_symbols(enum, f"{name}.")
        yield from _message_symbols(message.nested_type, f"{name}.")


def _enum_symbols(
    enum: descriptor_pb2.EnumDescriptorProto, prefix: str
) -> Iterator[tuple[str, str]]:
    yield prefix + enum.name, "other"
    for value in enum.value:  # protobuf scoping: values are siblings of their enum
        yield prefix + value.name, "other"


def _extensions(
    proto: descriptor_pb2.FileDescriptorProto,
) -> Iterator[descriptor_pb2.FieldDescriptorProto]:
    yield from proto.extension
    stack = list(proto.message_type)
    while stack:
        message = stack.pop()
        yield from message.extension
        stack.extend(message.nested_type)

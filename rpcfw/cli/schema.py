"""A schema to call by: a DescriptorPool of FileDescriptorProtos (from --proto or from server
reflection) and lookups of services, methods, messages and symbols in it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import descriptor, descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

from .cli_errors import fail

__all__ = ["Schema", "build_pool", "split_method"]

AnyDescriptor = (
    descriptor.ServiceDescriptor
    | descriptor.MethodDescriptor
    | descriptor.Descriptor
    | descriptor.EnumDescriptor
    | descriptor.FieldDescriptor
)


def build_pool(
    files: Iterable[descriptor_pb2.FileDescriptorProto],
) -> descriptor_pool.DescriptorPool:
    """A fresh pool with ``files`` added, each after the files it imports."""
    by_name = {f.name: f for f in files}
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str, path: tuple[str, ...]) -> None:
        if name in added:
            return
        file = by_name.get(name)
        if file is None:
            fail(f"the schema lacks {name!r} (imported by {path[-1] if path else '?'})")
        if name in path:
            fail(f"import cycle: {' -> '.join((*path, name))}")
        for dependency in file.dependency:
            add(dependency, (*path, name))
        pool.Add(file)
        added.add(name)

    for name in by_name:
        add(name, ())
    return pool


def split_method(text: str) -> tuple[str, str]:
    """``pkg.Service/Method``, ``/pkg.Service/Method`` or ``pkg.Service.Method``."""
    name = text.strip().lstrip("/")
    if "/" in name:
        service, _, method = name.rpartition("/")
    else:
        service, _, method = name.rpartition(".")
    if not service or not method or "/" in service:
        fail(f"malformed method {text!r}: expected SERVICE/METHOD, e.g. echo.v1.Echo/Unary")
    return service, method


class Schema:
    """Lookups in a DescriptorPool; ``services`` are the services the schema offers."""

    def __init__(self, pool: descriptor_pool.DescriptorPool, services: Iterable[str]) -> None:
        self.pool = pool
        self.services = sorted(set(services))

    @classmethod
    def of_files(cls, files: Iterable[descriptor_pb2.FileDescriptorProto]) -> Schema:
        files = list(files)
        services = [
            f"{f.package}.{s.name}" if f.package else s.name for f in files for s in f.service
        ]
        return cls(build_pool(files), services)

    def service(self, name: str) -> descriptor.ServiceDescriptor:
        try:
            return self.pool.FindServiceByName(name)
        except KeyError:
            known = ", ".join(self.services) or "(none)"
            fail(f"unknown service {name!r}; services: {known}")

    def method(self, text: str) -> descriptor.MethodDescriptor:
        service_name, method_name = split_method(text)
        service = self.service(service_name)
        method = service.methods_by_name.get(method_name)
        if method is None:
            names = ", ".join(m.name for m in service.methods)
            fail(f"{service_name} has no method {method_name!r}; methods: {names}")
        return method

    def symbol(self, name: str) -> AnyDescriptor:
        """A service, method, message, enum or field by its full name."""
        name = name.strip().lstrip(".").replace("/", ".")
        finders = (
            self.pool.FindServiceByName,
            self.pool.FindMessageTypeByName,
            self.pool.FindEnumTypeByName,
            self.pool.FindMethodByName,
            self.pool.FindFieldByName,
        )
        for find in finders:
            try:
                found: AnyDescriptor = find(name)
            except KeyError:
                continue
            return found
        fail(f"symbol {name!r} not found; services: {', '.join(self.services) or '(none)'}")

    @staticmethod
    def message_class(message: descriptor.Descriptor) -> type[Message]:
        cls: type[Message] = message_factory.GetMessageClass(message)
        return cls

    def new_message(self, message: descriptor.Descriptor) -> Any:
        return self.message_class(message)()

"""What generated code tells the runtime about its .proto file, for server reflection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.protobuf.descriptor import FileDescriptor

__all__ = ["ProtoFiles"]


@dataclass(frozen=True, slots=True)
class ProtoFiles:
    """A .proto file's serialized ``FileDescriptorProto`` (first), then those of every file it
    imports, transitively: what server reflection serves for the services the file declares.

    Generated service bases carry one as ``__rpcfw_files__``: the betterproto2 backend embeds
    the bytes at generation time, the protobuf backend takes them from its ``_pb2`` module
    (:meth:`from_descriptor`).
    """

    serialized: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.serialized:
            raise ValueError("ProtoFiles needs at least the file itself")

    @classmethod
    def from_descriptor(cls, file: FileDescriptor) -> ProtoFiles:
        """The files of a protobuf ``FileDescriptor`` (a ``_pb2`` module's ``DESCRIPTOR``)."""
        seen: dict[str, bytes] = {}
        stack = [file]
        while stack:
            current = stack.pop()
            if current.name not in seen:
                seen[current.name] = current.serialized_pb
                stack.extend(reversed(current.dependencies))
        return cls(tuple(seen.values()))

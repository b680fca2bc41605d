"""The descriptors a service module hands to the runtime, for server reflection.

Every generated ``<Service>Base`` gets ``__rpcfw_files__ = _PROTO_FILES``, an
``rpcfw.ProtoFiles``: the serialized ``FileDescriptorProto`` of its .proto file, then those of
the files it imports, transitively. How the module gets them depends on the message backend:

* protobuf: from the file's ``_pb2`` module, ``ProtoFiles.from_descriptor(DESCRIPTOR)``
  (protoc already embeds the same bytes there);
* betterproto2: its classes carry no descriptors, so the bytes are embedded here, at
  generation time, as bytes literals (without source info: no comments, as in a ``_pb2``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.protobuf import descriptor_pb2

from ._text import LINE_LENGTH
from .naming import Backend, module_base, relative_from, rpcfw_module

__all__ = ["ProtoFilesCode", "file_closure", "proto_files_code"]

_INDENT = "    "


def file_closure(
    protos: Sequence[descriptor_pb2.FileDescriptorProto], name: str
) -> tuple[bytes, ...]:
    """``name``'s descriptor, then its imports' (depth first), serialized deterministically
    and without ``source_code_info``; ``protos`` must hold every file ``name`` imports."""
    by_name = {proto.name: proto for proto in protos}
    order: dict[str, None] = {}  # insertion-ordered set
    stack = [name]
    while stack:
        current = stack.pop()
        if current in order:
            continue
        order[current] = None
        try:
            stack.extend(reversed(by_name[current].dependency))
        except KeyError:
            raise LookupError(f"{name}: imported file {current!r} not given") from None
    serialized = []
    for file in order:
        proto = descriptor_pb2.FileDescriptorProto()
        proto.CopyFrom(by_name[file])
        proto.ClearField("source_code_info")
        serialized.append(proto.SerializeToString(deterministic=True))
    return tuple(serialized)


@dataclass(frozen=True, slots=True)
class ProtoFilesCode:
    """What a service module needs for its ``_PROTO_FILES`` constant.

    ``imports``: extra ``(source, member)`` import (protobuf: the ``_pb2`` module's
    ``DESCRIPTOR``), or None; ``lines``: the constant's definition; ``name``: the constant.
    """

    imports: tuple[str, str] | None
    lines: tuple[str, ...]
    name: str


def proto_files_code(
    proto_name: str,
    backend: Backend,
    serialized: Sequence[bytes],
    claim: Callable[[str], str],
) -> ProtoFilesCode:
    """The code defining ``_PROTO_FILES`` for the service module of ``proto_name``.

    ``claim`` reserves a module-level name (it may return the wanted name with a suffix).
    """
    name = claim("_PROTO_FILES")
    comment = "# descriptors of this .proto file and of all it imports, for server reflection"
    if backend is Backend.PROTOBUF:
        local = claim("_DESCRIPTOR")
        source = relative_from(rpcfw_module(proto_name), module_base(proto_name) + "_pb2")
        line = f"{name} = rpcfw.ProtoFiles.from_descriptor({local})"
        return ProtoFilesCode((source, f"DESCRIPTOR as {local}"), (comment, line), name)
    if not serialized:
        raise LookupError(f"{proto_name}: no descriptor to embed")
    lines = [comment, f"{name} = rpcfw.ProtoFiles("]
    lines.append(f"{_INDENT}(")
    for blob in serialized:
        chunks = _chunks(blob, LINE_LENGTH - len(_INDENT * 2) - len('b"",'))
        lines += [f'{_INDENT * 2}b"{chunk}"' for chunk in chunks]
        lines[-1] += ","
    lines += [f"{_INDENT})", ")"]
    return ProtoFilesCode(None, tuple(lines), name)


_ESCAPES = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _escape(byte: int) -> str:
    if 0x20 <= byte < 0x7F and byte not in (0x22, 0x5C):  # printable, not " or \
        return chr(byte)
    return _ESCAPES.get(byte) or f"\\x{byte:02x}"


def _chunks(blob: bytes, width: int) -> list[str]:
    """``blob`` as bytes-literal bodies of at most ``width`` characters (escapes kept whole)."""
    chunks: list[str] = []
    current = ""
    for byte in blob:
        piece = _escape(byte)
        if len(current) + len(piece) > width:
            chunks.append(current)
            current = ""
        current += piece
    if current or not chunks:
        chunks.append(current)
    return chunks

"""Turn reflected file descriptors into a protobuf ``DescriptorPool``."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import descriptor_pb2, descriptor_pool

__all__ = ["build_pool"]


def build_pool(
    files: Iterable[descriptor_pb2.FileDescriptorProto],
    pool: descriptor_pool.DescriptorPool | None = None,
) -> descriptor_pool.DescriptorPool:
    """A pool holding ``files`` (a new one unless ``pool`` is given), each file added after
    the files it imports; a name given twice is added once (the first).

    Look types up in it (``pool.FindServiceByName``, ``pool.FindMessageTypeByName``) and make
    message classes with ``google.protobuf.message_factory.GetMessageClass``. An import that
    is neither among ``files`` nor already in ``pool`` raises ``KeyError``.
    """
    pool = descriptor_pool.DescriptorPool() if pool is None else pool
    by_name: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for file in files:
        by_name.setdefault(file.name, file)
    added: set[str] = set()
    for name in by_name:
        # depth first, imports before importers, without recursion
        stack: list[tuple[str, bool]] = [(name, False)]
        while stack:
            current, imports_done = stack.pop()
            if current in added:
                continue
            proto = by_name.get(current)
            if proto is None:
                try:
                    pool.FindFileByName(current)
                except KeyError:
                    raise KeyError(f"{current}: imported but not among the files") from None
                added.add(current)
            elif imports_done:
                pool.AddSerializedFile(proto.SerializeToString())
                added.add(current)
            else:
                stack.append((current, True))
                stack.extend((dep, False) for dep in reversed(proto.dependency))
    return pool

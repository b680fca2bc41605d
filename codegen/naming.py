"""Python names for generated code: methods, constants, modules, message imports."""

from __future__ import annotations

import builtins
import enum
import keyword
import re
from collections.abc import Collection
from dataclasses import dataclass

from .model import MessageRef

__all__ = [
    "Backend",
    "MessageImport",
    "escape",
    "flat_class_name",
    "message_import",
    "module_base",
    "relative_from",
    "rpcfw_module",
    "rpcfw_module_path",
    "snake_case",
    "upper_snake",
]

_BUILTINS = frozenset(dir(builtins))


class Backend(enum.Enum):
    """Which message classes the service modules import."""

    BETTERPROTO2 = "betterproto2"
    PROTOBUF = "protobuf"


def snake_case(name: str) -> str:
    """``SayHello`` -> ``say_hello``, ``GetHTTPResponse`` -> ``get_http_response``."""
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    name = re.sub(r"(?<=[A-Z])([A-Z])(?=[a-z])", r"_\1", name)
    return name.lower()


def upper_snake(name: str) -> str:
    return snake_case(name).upper()


def escape(name: str, reserved: Collection[str] = ()) -> str:
    """Make ``name`` safe as a Python attribute/variable in generated code.

    Keywords, builtins, dunder names and ``reserved`` names get a trailing underscore;
    a leading ``__`` (name mangling) is cut to one underscore.
    """
    if name.startswith("__") and not name.endswith("__"):
        name = name[1:]
    if (
        keyword.iskeyword(name)
        or keyword.issoftkeyword(name)
        or name in _BUILTINS
        or name in reserved
        or (name.startswith("__") and name.endswith("__"))
    ):
        name += "_"
    return name


def flat_class_name(local_name: str) -> str:
    """A nested message's flat name, as betterproto2 has it: ``Page.Cursor`` -> ``PageCursor``."""
    from betterproto2_compiler.casing import pascal_case

    return pascal_case(local_name)


def module_base(proto_file: str) -> str:
    """Dotted module prefix of a .proto file, as protoc's python generator computes it."""
    stem = proto_file[: -len(".proto")] if proto_file.endswith(".proto") else proto_file
    return stem.replace("-", "_").replace("/", ".")


def rpcfw_module(proto_file: str) -> str:
    return module_base(proto_file) + "_rpcfw"


def rpcfw_module_path(proto_file: str) -> str:
    return rpcfw_module(proto_file).replace(".", "/") + ".py"


def relative_from(current_module: str, target_module: str) -> str:
    """The ``from X`` part importing ``target_module`` from inside ``current_module``.

    Both are dotted paths inside the output package; an empty target is its root.
    """
    current_pkg = current_module.split(".")[:-1]
    target = target_module.split(".") if target_module else []
    common = 0
    while common < min(len(current_pkg), len(target)) and current_pkg[common] == target[common]:
        common += 1
    dots = "." * (len(current_pkg) - common + 1)
    return dots + ".".join(target[common:])


@dataclass(frozen=True, slots=True)
class MessageImport:
    """How a service module reaches one message class.

    ``source`` is the module (relative or absolute); ``top`` the top-level name imported
    from it; ``attr`` the dotted path below ``top`` for nested protobuf classes ("" if none).
    """

    source: str
    top: str
    attr: str


def message_import(ref: MessageRef, current_module: str, backend: Backend) -> MessageImport:
    if backend is Backend.BETTERPROTO2:
        # One package module per proto package; nested classes are flattened.
        source = relative_from(current_module, ref.package)
        return MessageImport(source, flat_class_name(ref.local_name), "")
    pb2 = module_base(ref.file) + "_pb2"
    # well-known types ship with the protobuf runtime
    wkt = ref.file.startswith("google/protobuf/")
    source = pb2 if wkt else relative_from(current_module, pb2)
    top, _, attr = ref.local_name.partition(".")
    return MessageImport(source, top, attr)

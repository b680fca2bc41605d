"""Fix-ups `rpcfw gen` applies to protoc's message output before it lands in OUT.

* protobuf: protoc imports other local ``_pb2`` modules absolutely (``from a.b import c_pb2``),
  which only works with OUT itself on ``sys.path``; rpcfw imports OUT as a package, so local
  imports become relative. ``google.protobuf`` imports stay absolute (the runtime ships them).
  protoc's ``.pyi`` leaves ``Mapping`` (message fields given as dicts) without type
  arguments, which ``mypy --strict`` rejects: it becomes ``Mapping[str, object]``; and it
  declares the field numbers of top-level extensions ``NAME: ClassVar[int]`` outside any
  class, which mypy rejects ("ClassVar can only be used for assignments in class body"):
  those lose the ``ClassVar``.
* betterproto2: its well-known types and message pool are not ``mypy --strict`` clean
  (betterproto2-compiler 0.10); patch the few known spots.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

from .naming import relative_from

__all__ = ["fix_betterproto2_tree", "fix_pb2_tree", "relativize_pb2_source", "use_private_pool"]

_FROM_IMPORT = re.compile(r"^from ([\w.]+) import (\w+_pb2) as (\w+)$", re.MULTILINE)
_PLAIN_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)
_STAR_IMPORT = re.compile(r"^from ([\w.]+_pb2) import \*$", re.MULTILINE)
_BARE_MAPPING = re.compile(r"\b_Mapping(?=\])")
_MODULE_CLASSVAR = re.compile(r"^(\w+): _ClassVar\[(.+)\]$", re.MULTILINE)  # no indent: top level


def _relative(current: str, target: str) -> tuple[str, str]:
    """(from-part, name) importing module ``target`` from module ``current``."""
    parent, _, name = target.rpartition(".")
    return relative_from(current, parent), name


def relativize_pb2_source(text: str, module: str, local: Collection[str]) -> str:
    """Rewrite imports of ``local`` pb2 modules in the source of ``module``."""

    def from_import(match: re.Match[str]) -> str:
        target = f"{match[1]}.{match[2]}"
        if target not in local:
            return match[0]
        src, name = _relative(module, target)
        return f"from {src} import {name} as {match[3]}"

    def plain_import(match: re.Match[str]) -> str:
        if match[1] not in local:
            return match[0]
        src, name = _relative(module, match[1])
        return f"from {src} import {name} as {match[2]}"

    def star_import(match: re.Match[str]) -> str:
        if match[1] not in local:
            return match[0]
        return f"from {relative_from(module, match[1])} import *"

    text = _FROM_IMPORT.sub(from_import, text)
    text = _PLAIN_IMPORT.sub(plain_import, text)
    return _STAR_IMPORT.sub(star_import, text)


def fix_pb2_tree(root: Path, local: Collection[str]) -> None:
    """Apply the protobuf fix-ups to every ``*_pb2.py``/``.pyi`` under ``root``."""
    for path in sorted([*root.rglob("*_pb2.py"), *root.rglob("*_pb2.pyi")]):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        text = path.read_text(encoding="utf-8")
        fixed = relativize_pb2_source(text, module, local)
        if path.suffix == ".pyi":
            fixed = _BARE_MAPPING.sub("_Mapping[str, object]", fixed)
            fixed = _MODULE_CLASSVAR.sub(r"\1: \2", fixed)
        if fixed != text:
            path.write_text(fixed, encoding="utf-8")


_DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("


def use_private_pool(root: Path) -> None:
    """Make every ``*_pb2.py`` under ``root`` register in a descriptor pool of its own."""
    for path in sorted(root.rglob("*_pb2.py")):
        text = path.read_text(encoding="utf-8")
        if _DEFAULT_POOL not in text:
            raise ValueError(f"{path}: no default-pool registration to replace")
        text = text.replace(
            _DEFAULT_POOL,
            "_descriptor_pool.DescriptorPool().AddSerializedFile("
            "  # private: no global clashes\n    ",
        )
        path.write_text(text, encoding="utf-8")


_IGNORE = "  # type: ignore[{codes},unused-ignore]"
_BP2_FIXES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "message_pool.py",
        re.compile(r"^(default_message_pool = betterproto2\.MessagePool\(\))$", re.M),
        r"\1" + _IGNORE.format(codes="no-untyped-call"),
    ),
    (
        "google/protobuf/__init__.py",
        re.compile(r"^(import dateutil\.parser)$", re.M),
        r"\1" + _IGNORE.format(codes="import-untyped,import-not-found"),
    ),
    (
        "google/protobuf/__init__.py",
        re.compile(r"(def from_dict\(cls, value), \*"),
        r"\1: typing.Any, *",
    ),
    (
        "google/protobuf/__init__.py",
        re.compile(r"(def to_dict\(self, \*\*kwargs)\)"),
        r"\1: typing.Any)",
    ),
    (
        "google/protobuf/__init__.py",
        re.compile(r"  # type: ignore\[reportArgumentType\]$", re.M),
        "",
    ),
    (
        "google/protobuf/__init__.py",
        re.compile(r"^(\s+case Value\(number_value=int\(num\)\) \| Value\(.*\):)$", re.M),
        r"\1" + _IGNORE.format(codes="misc"),
    ),
)


def fix_betterproto2_tree(root: Path) -> None:
    """Patch betterproto2's known strict-typing gaps in the tree at ``root``."""
    for rel, pattern, replacement in _BP2_FIXES:
        path = root / rel
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            path.write_text(pattern.sub(replacement, text), encoding="utf-8")

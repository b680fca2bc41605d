"""``--proto FILE -I DIR``: compile .proto files at runtime with the protoc bundled in
grpcio-tools into a FileDescriptorSet (with every import), for a DescriptorPool."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2

from .cli_errors import fail, one_line

__all__ = ["compile_protos", "not_found_hint"]

_TIMEOUT = 300.0


def _wkt_dir() -> Path:
    return Path(str(resources.files("grpc_tools") / "_proto"))


def not_found_hint(stderr: str) -> str:
    """A hint at ``-I`` when protoc could not find a file (or an import) on its path."""
    if "File not found" in stderr or "not found or had errors" in stderr:
        return (
            " (hint: pass the import root of the file and of what it imports with -I DIR; "
            "file names are looked up below each -I)"
        )
    return ""


def _spelled(proto: Path, includes: Sequence[Path]) -> tuple[str, list[Path]]:
    """How to name ``proto`` to protoc: relative to the first include holding it (an include
    of its own directory is added when none does)."""
    resolved = proto.resolve()
    for include in includes:
        try:
            return str(resolved.relative_to(include.resolve())), []
        except ValueError:
            continue
    return proto.name, [proto.parent]


def compile_protos(
    protos: Sequence[Path], includes: Sequence[Path]
) -> descriptor_pb2.FileDescriptorSet:
    """Every file of ``protos`` and everything they import, as protoc parsed them."""
    if not protos:
        fail("no .proto file given")
    for proto in protos:
        if not proto.is_file():
            fail(f"proto {proto}: no such file")
    roots = list(includes)
    names = []
    for proto in protos:
        name, extra = _spelled(proto, roots)
        roots += extra
        names.append(name)
    with tempfile.TemporaryDirectory(prefix="rpcfw-proto-") as tmp:
        out = Path(tmp) / "set.bin"
        args = [
            sys.executable, "-m", "grpc_tools.protoc",
            *(f"--proto_path={root}" for root in dict.fromkeys(map(str, roots))),
            f"--proto_path={_wkt_dir()}",
            f"--descriptor_set_out={out}",
            "--include_imports",
            *names,
        ]  # fmt: skip
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=_TIMEOUT)
        except subprocess.TimeoutExpired:
            fail(f"protoc did not finish within {_TIMEOUT:.0f} s")
        if proc.returncode != 0:
            text = proc.stderr.strip() or f"protoc failed with exit code {proc.returncode}"
            fail(f"protoc: {one_line(text)}{not_found_hint(text)}")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())

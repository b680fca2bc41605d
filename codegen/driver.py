"""What ``rpcfw gen`` does: protos in, an importable package of messages + services out.

1. ``protoc`` parses and checks the inputs into a descriptor set (``--include_imports``);
   any error is protoc's ``file:line:col: message`` text in :class:`GenError`.
2. Every non-``google/protobuf`` file of that set (the inputs and what they import) gets its
   messages generated from the descriptor set, by protoc's python/pyi generators or by
   betterproto2's plugin, and its services rendered in-process by this package.
3. All of it is written to a scratch dir, post-processed, completed with ``__init__.py``
   files, and only then moved into OUT: a failure leaves OUT untouched.
4. OUT is rpcfw gen's: its manifest lists what it wrote, files it wrote before and no longer
   writes are removed, and it does not replace files it does not own unless forced
   (:mod:`.ownership`).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from .errors import GenError
from .naming import Backend, module_base
from .ownership import Ownership, digest, write_manifest
from .plugin import generate
from .postprocess import fix_betterproto2_tree, fix_pb2_tree, use_private_pool

__all__ = ["GenError", "GenResult", "collect_protos", "generate_tree", "wkt_include_dir"]

_PROTOC = (sys.executable, "-m", "grpc_tools.protoc")
_TIMEOUT = 600.0
_SKIP_DIRS = frozenset({"site-packages", "node_modules", "__pycache__"})


@dataclass(frozen=True, slots=True)
class GenResult:
    files: tuple[Path, ...]  # written into OUT, sorted
    warnings: str  # protoc's stderr of a successful run (e.g. unused imports), may be ""
    removed: tuple[Path, ...] = ()  # written by the previous run and no longer generated


def wkt_include_dir() -> Path:
    """grpc_tools' bundled ``google/protobuf/*.proto`` directory."""
    return Path(str(resources.files("grpc_tools") / "_proto"))


def _wanted(path: Path, root: Path) -> bool:
    """Skip hidden directories and installed packages (a .venv holds protobuf's own protos)."""
    parts = path.relative_to(root).parts[:-1]
    return not any(p.startswith(".") or p in _SKIP_DIRS for p in parts)


def collect_protos(inputs: Sequence[str | Path]) -> list[Path]:
    """Expand directories to the .proto files below them (sorted); keep files as given.

    Hidden directories, ``site-packages`` and ``node_modules`` below a given directory are skipped.
    """
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*.proto") if p.is_file() and _wanted(p, item))
        elif item.is_file():
            found.append(item)
        else:
            raise GenError(f"{item}: No such file or directory")
    if not found:
        where = ", ".join(map(str, inputs)) or "(none given)"
        raise GenError(f"no .proto files to generate from: {where}")
    return list(dict.fromkeys(found))


def _within(path: Path, root: Path) -> Path | None:
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return None


def _protoc_inputs(
    inputs: Sequence[str | Path], files: Sequence[Path], includes: Sequence[str | Path]
) -> tuple[list[Path], list[Path]]:
    """(proto_path, files) for protoc, spelled as the user spelled them.

    A file is passed as ``<include>/<path below it>`` for the first include containing it
    (protoc wants the include as a textual prefix); a given file or directory no include
    contains becomes an include itself (a file's directory, for a file).
    """
    proto_path = [Path(i) for i in includes]
    for item in map(Path, inputs):
        if not any(_within(item, inc) is not None for inc in proto_path):
            proto_path.append(item if item.is_dir() else item.parent)
    spelled = []
    for file in files:
        for inc in proto_path:
            below = _within(file, inc)
            if below is not None:
                spelled.append(inc / below)
                break
    return list(dict.fromkeys(proto_path)), spelled


def _run(args: Sequence[str], cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(
            [*_PROTOC, *args], cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise GenError(f"protoc did not finish within {_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        raise GenError(proc.stderr.strip() or f"protoc failed with exit code {proc.returncode}")
    return proc.stderr


def _betterproto2_plugin(scratch: Path) -> Path:
    """An executable running betterproto2's plugin in ``scratch`` with ruff on PATH."""
    (scratch / "ruff.toml").write_text("# pins ruff's defaults for betterproto2\n")
    script = scratch / "protoc-gen-python_betterproto2"
    bindir = os.path.dirname(sys.executable)
    script.write_text(
        f"#!{sys.executable}\n"
        "import os\n"
        f"os.chdir({str(scratch)!r})\n"
        f"os.environ['PATH'] = {bindir!r} + os.pathsep + os.environ.get('PATH', '')\n"
        "from betterproto2_compiler.plugin.main import main\n"
        "main()\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def _add_init_files(stage: Path, owner: Ownership) -> None:
    """Make every directory holding Python code a package (keeping the user's ``__init__``)."""
    rel_dirs: set[Path] = {Path()}
    for path in stage.rglob("*.py"):
        rel_dirs.update(path.relative_to(stage).parents)
    for rel in rel_dirs:
        init = stage / rel / "__init__.py"
        users = owner.is_users((rel / "__init__.py").as_posix())
        if not init.exists() and not users:
            init.write_text("")
        elif users and init.exists() and not init.stat().st_size:
            init.unlink()  # an empty placeholder (betterproto2 writes some): the user's stays


def _staged(stage: Path) -> dict[str, str]:
    return {
        p.relative_to(stage).as_posix(): digest(p.read_bytes())
        for p in stage.rglob("*")
        if p.is_file()
    }


def _move_into(stage: Path, out: Path) -> list[Path]:
    written = []
    for src in sorted(p for p in stage.rglob("*") if p.is_file()):
        dest = out / src.relative_to(stage)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_file() and dest.read_bytes() == src.read_bytes():
            written.append(dest)
            continue  # idempotent re-run: leave identical files (and their mtimes) alone
        shutil.move(str(src), str(dest))
        written.append(dest)
    return written


def _drop_progress(stderr: str) -> str:
    # betterproto2 prints "Writing <file>" for every file it writes
    lines = [line for line in stderr.splitlines() if not line.startswith("Writing ")]
    return "\n".join(lines)


def generate_tree(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    includes: Sequence[str | Path] = (),
    backend: Backend = Backend.BETTERPROTO2,
    private_pool: bool = False,
    force: bool = False,
) -> GenResult:
    """Generate messages and rpcfw services for ``inputs`` into the package dir ``out``.

    ``out`` is rpcfw gen's (see :mod:`.ownership`): what the previous run wrote and this one
    does not is removed. ``force``: generate into a folder rpcfw gen did not make, and replace
    files it does not own (or that were edited).

    ``private_pool`` (protobuf backend, files without imports only): register the messages in
    a descriptor pool of their own instead of protobuf's global one, so a library can bundle
    well-known protocols (rpcfw's grpc.health.v1) without clashing with other copies."""
    files = collect_protos(inputs)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GenError(f"{out}: exists and is not a directory")
    owner = Ownership.scan(out)
    owner.check_folder(force)
    proto_path, spelled = _protoc_inputs(inputs, files, includes)
    proto_path.append(wkt_include_dir())
    with tempfile.TemporaryDirectory(prefix="rpcfw-gen-") as tmp:
        scratch = Path(tmp)
        fds_path, stage = scratch / "fds.bin", scratch / "out"
        stage.mkdir()
        warnings = _run(
            [
                *(f"--proto_path={d}" for d in proto_path),
                f"--descriptor_set_out={fds_path}",
                "--include_imports",
                "--include_source_info",
                *map(str, spelled),
            ]
        )
        fds = descriptor_pb2.FileDescriptorSet.FromString(fds_path.read_bytes())
        closure = [f.name for f in fds.file if not f.name.startswith("google/protobuf/")]
        if not closure:
            raise GenError("nothing to generate: only google/protobuf files given")
        if private_pool:
            deps = [d for f in fds.file if f.name in closure for d in f.dependency]
            if backend is not Backend.PROTOBUF or deps:
                raise GenError("private_pool needs the protobuf backend and files without imports")
        _generate_messages(fds_path, closure, scratch, stage, backend)
        if private_pool:
            use_private_pool(stage)
        _generate_services(fds, closure, stage, backend)
        _add_init_files(stage, owner)
        staged = _staged(stage)
        owner.check_writes(staged, force)
        remove, keep = owner.stale(staged)
        written = _move_into(stage, out)
    removed = owner.remove(remove)
    write_manifest(out, backend.value, staged)
    kept = [f"{out / rel}: no longer generated, kept: edited since it was" for rel in keep]
    notes = [note for note in (_drop_progress(warnings), *kept) if note.strip()]
    return GenResult(tuple(written), "\n".join(notes), tuple(removed))


def _generate_messages(
    fds_path: Path, closure: Iterable[str], scratch: Path, stage: Path, backend: Backend
) -> None:
    common = [f"--descriptor_set_in={fds_path}"]
    if backend is Backend.PROTOBUF:
        _run([*common, f"--python_out={stage}", f"--pyi_out={stage}", *closure], cwd=scratch)
        fix_pb2_tree(stage, {module_base(name) + "_pb2" for name in closure})
    else:
        plugin = _betterproto2_plugin(scratch)
        _run(
            [
                *common,
                f"--plugin=protoc-gen-python_betterproto2={plugin}",
                "--python_betterproto2_opt=client_generation=none,server_generation=none",
                f"--python_betterproto2_out={stage}",
                *closure,
            ],
            cwd=scratch,
        )
        fix_betterproto2_tree(stage)


def _generate_services(
    fds: descriptor_pb2.FileDescriptorSet, closure: Sequence[str], stage: Path, backend: Backend
) -> None:
    request = plugin_pb2.CodeGeneratorRequest(
        file_to_generate=closure, parameter=f"messages={backend.value}", proto_file=fds.file
    )
    response = generate(request)
    if response.error:
        raise GenError(f"protoc-gen-rpcfw: {response.error}")
    for item in response.file:
        path = stage / item.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(item.content, encoding="utf-8")

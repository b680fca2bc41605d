"""`rpcfw gen` owns its OUT: a manifest of what it wrote, stale files removed, and files it
does not own (or that were edited) never replaced unasked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rpcfw_codegen import Backend, generate_tree
from rpcfw_codegen.ownership import MANIFEST, digest

from .conftest import PROTO
from .test_faults import _run


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def _gen(out: Path, backend: Backend, *protos: Path) -> None:
    generate_tree(list(protos) or [PROTO], out, includes=[PROTO], backend=backend)


_SAME_CLASS = """
import importlib, sys
backend = sys.argv[1]
pkg = importlib.import_module("gen.echo.v1")
stubs = importlib.import_module("gen.echo.v1.echo_rpcfw")
if backend == "betterproto2":
    assert pkg.EchoRequest is stubs.EchoRequest, "package-level class is not the stub's"
else:
    assert not hasattr(pkg, "EchoRequest"), "stale betterproto2 class in the package"
    assert stubs.EchoRequest is importlib.import_module("gen.echo.v1.echo_pb2").EchoRequest
print("ok")
"""


@pytest.mark.parametrize("first", list(Backend), ids=lambda b: f"from-{b.value}")
def test_switching_backends_leaves_no_stale_files_and_one_class_per_name(
    tmp_path: Path, first: Backend
) -> None:
    second = next(b for b in Backend if b is not first)
    out, fresh = tmp_path / "gen", tmp_path / "fresh" / "gen"
    _gen(out, first)
    _gen(out, second)
    _gen(fresh, second)
    assert _tree(out) == _tree(fresh)  # byte for byte what a first run of `second` writes
    proc = subprocess.run(
        [sys.executable, "-c", _SAME_CLASS, second.value],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.strip() == "ok", proc.stderr


def test_manifest_lists_every_written_file_with_its_digest(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    _gen(out, Backend.PROTOBUF)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["backend"] == "protobuf"
    files = _tree(out)
    del files[MANIFEST]
    assert manifest["files"] == {rel: digest(data) for rel, data in files.items()}


def test_removed_proto_removes_its_files_and_empty_folders(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    _gen(out, Backend.PROTOBUF)
    (out / "echo" / "v1" / "__pycache__").mkdir()
    (out / "echo" / "v1" / "__pycache__" / "echo_pb2.cpython-311.pyc").write_bytes(b"")
    _gen(out, Backend.PROTOBUF, PROTO / "helloworld.proto")
    assert not (out / "echo").exists()
    assert sorted(_tree(out)) == [
        MANIFEST,
        "__init__.py",
        "helloworld_pb2.py",
        "helloworld_pb2.pyi",
        "helloworld_rpcfw.py",
    ]


def test_folder_with_foreign_files_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    out = tmp_path / "src"
    out.mkdir()
    (out / "app.py").write_text("mine")
    code, _, err = _run(PROTO, "-o", out)
    assert code == 1
    assert f"{out}: not empty and not made by rpcfw gen" in err
    assert "app.py" in err and "--force" in err
    assert "Traceback" not in err
    assert _tree(out) == {"app.py": b"mine"}


def test_force_generates_beside_foreign_files_and_keeps_them(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    out.mkdir()
    (out / "app.py").write_text("mine")
    code, _, err = _run(PROTO, "-o", out, "--force")
    assert code == 0, err
    assert (out / "app.py").read_text() == "mine"
    assert "app.py" not in json.loads((out / MANIFEST).read_text())["files"]
    code, _, err = _run(PROTO, "-o", out, "--messages", "protobuf")  # gen's folder now
    assert code == 0, err
    assert (out / "app.py").read_text() == "mine"


def test_source_protos_inside_out_do_not_count(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    out.mkdir()
    (out / "helloworld.proto").write_bytes((PROTO / "helloworld.proto").read_bytes())
    code, _, err = _run(out / "helloworld.proto", "-o", out)
    assert code == 0, err
    assert (out / "helloworld_rpcfw.py").is_file()


def test_replacing_a_file_gen_does_not_own_is_refused_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    _gen(out, Backend.PROTOBUF, PROTO / "helloworld.proto")
    mine = out / "echo" / "v1" / "echo_rpcfw.py"
    mine.parent.mkdir(parents=True)
    mine.write_text("# my own echo module\n")
    code, _, err = _run(PROTO, "-o", out, "--messages", "protobuf")
    assert code == 1
    assert "would overwrite files rpcfw gen did not write" in err
    assert "echo/v1/echo_rpcfw.py" in err and "--force" in err
    assert "Traceback" not in err
    assert mine.read_text() == "# my own echo module\n"
    assert not (out / "echo" / "v1" / "echo_pb2.py").exists()  # nothing written
    code, _, err = _run(PROTO, "-o", out, "--messages", "protobuf", "--force")
    assert code == 0, err
    assert "class EchoStub" in mine.read_text()
    assert "echo/v1/echo_rpcfw.py" in json.loads((out / MANIFEST).read_text())["files"]


def test_edited_generated_file_is_not_overwritten_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    _gen(out, Backend.PROTOBUF)
    edited = out / "helloworld_rpcfw.py"
    edited.write_text(edited.read_text() + "# my fix\n")
    code, _, err = _run(PROTO, "-o", out, "--messages", "protobuf")
    assert code == 1
    assert "edited since" in err and "helloworld_rpcfw.py" in err
    assert edited.read_text().endswith("# my fix\n")
    code, _, err = _run(PROTO, "-o", out, "--messages", "protobuf", "--force")
    assert code == 0, err
    assert not edited.read_text().endswith("# my fix\n")


def test_edited_file_no_longer_generated_is_kept_and_becomes_the_users(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    _gen(out, Backend.PROTOBUF)
    edited = out / "echo" / "v1" / "echo_pb2.pyi"
    edited.write_text(edited.read_text() + "# my note\n")
    code, _, err = _run(PROTO / "helloworld.proto", "-o", out, "--messages", "protobuf")
    assert code == 0, err
    assert f"{edited}: no longer generated, kept" in err
    assert edited.read_text().endswith("# my note\n")
    assert not (out / "echo" / "v1" / "echo_pb2.py").exists()
    assert "echo/v1/echo_pb2.pyi" not in json.loads((out / MANIFEST).read_text())["files"]
    code, _, err = _run(PROTO / "helloworld.proto", "-o", out, "--messages", "protobuf")
    assert code == 0 and "kept" not in err  # the user's file now: left alone, not reported


def test_users_package_init_is_kept_across_runs(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    _gen(out, Backend.PROTOBUF)
    (out / "__init__.py").write_text("# user-owned package init\n")
    _gen(out, Backend.PROTOBUF)
    assert (out / "__init__.py").read_text() == "# user-owned package init\n"
    assert "__init__.py" not in json.loads((out / MANIFEST).read_text())["files"]
    _gen(out, Backend.BETTERPROTO2)  # a placeholder is never written over the user's
    assert (out / "__init__.py").read_text() == "# user-owned package init\n"


def test_corrupt_manifest_is_reported(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    out.mkdir()
    (out / MANIFEST).write_text('{"files": {"../../etc/passwd": "x"}}')
    code, _, err = _run(PROTO, "-o", out)
    assert code == 1
    assert f"{out / MANIFEST}: not a manifest of rpcfw gen" in err
    assert "Traceback" not in err

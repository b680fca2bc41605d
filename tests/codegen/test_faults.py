"""`rpcfw gen` on bad input: non-zero exit, protoc's `file:line: message`, OUT untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from rpcfw.cli.gen_command import gen

from .conftest import PROTO

app = typer.Typer()
app.command("gen")(gen)
app.command("noop")(lambda: None)  # two commands, so `gen` is a subcommand as in `rpcfw gen`


def _run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["gen", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An OUT of an earlier run, with a file of the user's beside: failures must leave it so."""
    out = tmp_path / "out"
    code, _, err = _run(PROTO / "helloworld.proto", "-o", out, "--messages", "protobuf")
    assert code == 0, err
    (out / "keep.txt").write_text("mine")
    (tmp_path / "before.json").write_text(json.dumps({k: v.hex() for k, v in _files(out).items()}))
    return out


def _untouched(out: Path) -> None:
    before = json.loads((out.parent / "before.json").read_text())
    assert {k: v.hex() for k, v in _files(out).items()} == before
    assert (out / "keep.txt").read_text() == "mine"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "protos" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_malformed_proto_reports_file_and_line(tmp_path: Path, out: Path) -> None:
    bad = _write(tmp_path, "bad.proto", 'syntax = "proto3";\nmessage A {\n  string a = 1\n}\n')
    code, _, err = _run(bad, "-o", out)
    assert code == 1
    assert "bad.proto:4:1:" in err and 'Expected ";"' in err
    assert "Traceback" not in err
    _untouched(out)


def test_missing_import_reports_importing_file(tmp_path: Path, out: Path) -> None:
    text = 'syntax = "proto3";\nimport "nope/gone.proto";\nmessage B { string b = 1; }\n'
    src = _write(tmp_path, "needs.proto", text)
    code, _, err = _run(src, "-o", out)
    assert code == 1
    assert "nope/gone.proto: File not found." in err
    assert "needs.proto:2:1:" in err
    _untouched(out)


def test_unknown_option_is_rejected(tmp_path: Path, out: Path) -> None:
    text = 'syntax = "proto3";\nmessage C {\n  string c = 1 [lazyness = true];\n}\n'
    src = _write(tmp_path, "opt.proto", text)
    code, _, err = _run(src, "-o", out)
    assert code == 1
    assert "opt.proto:3:" in err and 'Option "lazyness" unknown' in err
    _untouched(out)


def test_one_bad_file_among_good_ones_writes_nothing(tmp_path: Path, out: Path) -> None:
    _write(tmp_path, "good.proto", 'syntax = "proto3";\nmessage G { string g = 1; }\n')
    _write(tmp_path, "zbad.proto", 'syntax = "proto3";\nmessage Z { string z = 1 }\n')
    code, _, err = _run(tmp_path / "protos", "-o", out, "--messages", "protobuf")
    assert code == 1
    assert "zbad.proto:2:" in err
    _untouched(out)


def test_empty_input_list_is_a_usage_error(out: Path) -> None:
    code, _, err = _run("-o", out)
    assert code == 2
    assert "Missing argument" in err
    _untouched(out)


def test_directory_without_protos(tmp_path: Path, out: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(empty, "-o", out)
    assert code == 1
    assert "no .proto files" in err
    _untouched(out)


def test_missing_input_path(tmp_path: Path, out: Path) -> None:
    code, _, err = _run(tmp_path / "nowhere.proto", "-o", out)
    assert code == 1
    assert "nowhere.proto: No such file or directory" in err
    _untouched(out)


def test_unknown_backend_is_a_usage_error(out: Path) -> None:
    code, _, err = _run(PROTO, "-o", out, "--messages", "json")
    assert code == 2
    assert "json" in err
    _untouched(out)


def test_out_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    code, _, err = _run(PROTO, "-o", target)
    assert code == 1
    assert "not a directory" in err


def test_success_prints_summary_and_creates_package(tmp_path: Path) -> None:
    code, stdout, err = _run(PROTO, "-o", tmp_path / "gen", "--messages", "protobuf")
    assert code == 0, err
    assert "files in" in stdout
    assert (tmp_path / "gen" / "__init__.py").is_file()
    assert (tmp_path / "gen" / "echo" / "v1" / "echo_rpcfw.py").is_file()

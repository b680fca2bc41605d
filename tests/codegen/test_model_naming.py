"""Pure unit tests of the model (descriptor -> Service/Method) and of naming."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from rpcfw_codegen.model import Cardinality, build_files, clean_comment
from rpcfw_codegen.naming import (
    Backend,
    escape,
    flat_class_name,
    message_import,
    module_base,
    relative_from,
    rpcfw_module_path,
    snake_case,
)
from rpcfw_codegen.postprocess import fix_pb2_tree

MethodOptions = descriptor_pb2.MethodOptions


def _file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(name="pkg/svc.proto", package="pkg.v1")
    req = f.message_type.add(name="Req")
    req.nested_type.add(name="Inner")
    f.message_type.add(name="Resp")
    svc = f.service.add(name="Svc")
    svc.options.deprecated = True
    kinds = [(False, False), (False, True), (True, False), (True, True)]
    for i, (cs, ss) in enumerate(kinds):
        svc.method.add(
            name=f"M{i}",
            input_type=".pkg.v1.Req",
            output_type=".pkg.v1.Req.Inner" if i == 3 else ".pkg.v1.Resp",
            client_streaming=cs,
            server_streaming=ss,
        )
    svc.method[0].options.deprecated = True
    svc.method[1].options.idempotency_level = MethodOptions.IDEMPOTENT
    svc.method[2].options.idempotency_level = MethodOptions.NO_SIDE_EFFECTS
    svc.method[3].options.idempotency_level = MethodOptions.IDEMPOTENCY_UNKNOWN
    loc = f.source_code_info.location
    loc.add(path=[6, 0], leading_comments=" The service.\n Second line.\n")
    loc.add(path=[6, 0, 2, 1], trailing_comments=" Trailing only.\n")
    loc.add(path=[6, 0, 2, 2], leading_comments=" Leading wins.\n", trailing_comments=" no\n")
    return f


def test_cardinality_from_streaming_flags() -> None:
    (proto,) = build_files([_file()], ["pkg/svc.proto"])
    cards = [m.cardinality for m in proto.services[0].methods]
    assert cards == [
        Cardinality.UNARY_UNARY,
        Cardinality.UNARY_STREAM,
        Cardinality.STREAM_UNARY,
        Cardinality.STREAM_STREAM,
    ]
    assert Cardinality.STREAM_UNARY.client_streaming
    assert not Cardinality.STREAM_UNARY.server_streaming


def test_types_paths_and_nested_refs() -> None:
    (proto,) = build_files([_file()], ["pkg/svc.proto"])
    service = proto.services[0]
    assert service.full_name == "pkg.v1.Svc"
    assert service.path(service.methods[0]) == "/pkg.v1.Svc/M0"
    inner = service.methods[3].output
    assert (inner.full_name, inner.local_name, inner.package) == (
        "pkg.v1.Req.Inner",
        "Req.Inner",
        "pkg.v1",
    )
    assert inner.is_nested
    assert [r.full_name for r in proto.message_refs()] == [
        "pkg.v1.Req",
        "pkg.v1.Resp",
        "pkg.v1.Req.Inner",
    ]


def test_types_are_every_message_and_enum_of_the_file_but_map_entries() -> None:
    f = _file()
    f.enum_type.add(name="Color")
    req = f.message_type[0]
    req.enum_type.add(name="Kind")
    entry = req.nested_type.add(name="LabelsEntry")
    entry.options.map_entry = True
    req.nested_type[0].nested_type.add(name="Deepest")
    (proto,) = build_files([f], ["pkg/svc.proto"])
    assert [(r.local_name, r.full_name, r.file) for r in proto.types] == [
        ("Color", "pkg.v1.Color", "pkg/svc.proto"),
        ("Req", "pkg.v1.Req", "pkg/svc.proto"),
        ("Req.Kind", "pkg.v1.Req.Kind", "pkg/svc.proto"),
        ("Req.Inner", "pkg.v1.Req.Inner", "pkg/svc.proto"),
        ("Req.Inner.Deepest", "pkg.v1.Req.Inner.Deepest", "pkg/svc.proto"),
        ("Resp", "pkg.v1.Resp", "pkg/svc.proto"),
    ]


def test_pyi_fixups_drop_classvar_outside_classes_only(tmp_path: Path) -> None:
    stub = tmp_path / "ext_pb2.pyi"
    stub.write_text(
        "from typing import ClassVar as _ClassVar\n"
        "VISIBILITY_FIELD_NUMBER: _ClassVar[int]\n"
        "visibility: _descriptor.FieldDescriptor\n"
        "class M(_message.Message):\n"
        "    X_FIELD_NUMBER: _ClassVar[int]\n"
        "    def __init__(self, m: _Optional[_Union[M, _Mapping]] = ...) -> None: ...\n"
    )
    fix_pb2_tree(tmp_path, set())
    lines = stub.read_text().splitlines()
    assert lines[1] == "VISIBILITY_FIELD_NUMBER: int"  # mypy: ClassVar only in a class body
    assert lines[4] == "    X_FIELD_NUMBER: _ClassVar[int]"
    assert lines[5].endswith("m: _Optional[_Union[M, _Mapping[str, object]]] = ...) -> None: ...")


def test_deprecated_and_idempotency() -> None:
    (proto,) = build_files([_file()], ["pkg/svc.proto"])
    service = proto.services[0]
    assert service.deprecated
    assert [m.deprecated for m in service.methods] == [True, False, False, False]
    assert [m.idempotent for m in service.methods] == [False, True, True, False]


def test_comments_leading_then_trailing() -> None:
    (proto,) = build_files([_file()], ["pkg/svc.proto"])
    service = proto.services[0]
    assert service.comment == "The service.\nSecond line."
    assert [m.comment for m in service.methods] == ["", "Trailing only.", "Leading wins.", ""]


def test_clean_comment_strips_blank_edges_and_cr() -> None:
    assert clean_comment("\n  indented\r\n second \n\n") == " indented\nsecond"


def test_unknown_type_is_a_lookup_error() -> None:
    f = _file()
    f.service[0].method[0].input_type = ".nope.Missing"
    with pytest.raises(LookupError, match=r"nope\.Missing"):
        build_files([f], ["pkg/svc.proto"])


@pytest.mark.parametrize(
    ("proto_name", "python"),
    [
        ("SayHello", "say_hello"),
        ("GetHTTPResponse", "get_http_response"),
        ("say_hello", "say_hello"),
        ("Rpcfw_methods", "rpcfw_methods"),
        ("V2Api", "v2_api"),
        ("ABC", "abc"),
    ],
)
def test_snake_case(proto_name: str, python: str) -> None:
    assert snake_case(proto_name) == python


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("class", "class_"),
        ("import", "import_"),
        ("none", "none"),
        ("print", "print_"),
        ("match", "match_"),
        ("__init__", "__init___"),
        ("__private", "_private"),
        ("channel", "channel_"),
        ("say_hello", "say_hello"),
    ],
)
def test_escape(name: str, escaped: str) -> None:
    assert escape(name, reserved={"channel"}) == escaped


def test_module_names_follow_protoc() -> None:
    assert module_base("a/b-c/my-file.proto") == "a.b_c.my_file"
    assert rpcfw_module_path("echo/v1/echo.proto") == "echo/v1/echo_rpcfw.py"
    assert flat_class_name("Page.Cursor") == "PageCursor"


@pytest.mark.parametrize(
    ("current", "target", "source"),
    [
        ("helloworld_rpcfw", "helloworld_pb2", ".helloworld_pb2"),
        ("echo.v1.echo_rpcfw", "echo.v1", "."),
        ("a.b.c.deep_rpcfw", "common.v1.types_pb2", "....common.v1.types_pb2"),
        ("a.b.c.deep_rpcfw", "a.x", "...x"),
        ("a.b_rpcfw", "", ".."),
    ],
)
def test_relative_from(current: str, target: str, source: str) -> None:
    assert relative_from(current, target) == source


def test_message_import_per_backend() -> None:
    (proto,) = build_files([_file()], ["pkg/svc.proto"])
    inner = proto.services[0].methods[3].output
    bp2 = message_import(inner, "pkg.svc_rpcfw", Backend.BETTERPROTO2)
    assert (bp2.source, bp2.top, bp2.attr) == (".v1", "ReqInner", "")
    pb = message_import(inner, "pkg.svc_rpcfw", Backend.PROTOBUF)
    assert (pb.source, pb.top, pb.attr) == (".svc_pb2", "Req", "Inner")

"""The CLI's pure pieces, in process: the JSON document stream, help labels, request metadata,
the schema lookups and the bench report renderings."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from rpcfw.bench.html_report import to_html, to_markdown
from rpcfw.bench.report import BenchResult
from rpcfw.cli.channel_options import parse_metadata
from rpcfw.cli.cli_errors import CliError
from rpcfw.cli.help_labels import _label
from rpcfw.cli.json_messages import JsonDocuments
from rpcfw.cli.proto_schema import compile_protos
from rpcfw.cli.schema import Schema

from ..conftest import ROOT


def test_json_documents_come_out_as_soon_as_complete_across_lines() -> None:
    documents = JsonDocuments("stdin")
    assert list(documents.feed('{"a": 1}\n{"b":\n')) == [{"a": 1}]
    assert list(documents.feed(' 2}\n {"c": 3} {"d"')) == [{"b": 2}, {"c": 3}]
    assert list(documents.feed(": 4}")) == [{"d": 4}]
    documents.close()
    assert documents.count == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}\n{"b": x}\n', "stdin (line 2) is not valid JSON"),
        ('{"a" 1}', "stdin (line 1) is not valid JSON: Expecting ':' delimiter"),
    ],
)
def test_json_documents_name_the_line_of_bad_json(text: str, expected: str) -> None:
    with pytest.raises(CliError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        list(JsonDocuments("stdin").feed(text))


def test_an_unfinished_json_document_fails_at_the_end() -> None:
    documents = JsonDocuments("--data")
    assert list(documents.feed('{"a": ')) == []
    with pytest.raises(CliError, match="unexpected end of input"):
        documents.close()


def test_help_labels() -> None:
    assert _label("<int range>") == "INTEGER"
    assert _label("<list[Path]>") == "PATH"
    assert _label("<str>") == "TEXT"
    assert _label("<betterproto2|protobuf>") == "[betterproto2|protobuf]"


def test_metadata_bin_values_are_base64_with_or_without_padding() -> None:
    assert parse_metadata(["X-A: 1", "x-b-bin:AAE", "x-c-bin:AAE="]) == [
        ("x-a", "1"),
        ("x-b-bin", b"\x00\x01"),
        ("x-c-bin", b"\x00\x01"),
    ]
    with pytest.raises(CliError, match="expected KEY:VALUE"):
        parse_metadata(["novalue"])


def test_schema_lookups_from_a_proto() -> None:
    files = compile_protos([ROOT / "proto" / "echo" / "v1" / "echo.proto"], [ROOT / "proto"])
    schema = Schema.of_files(files.file)
    assert schema.services == ["echo.v1.Echo"]
    assert schema.method("/echo.v1.Echo/Bidi").client_streaming
    assert schema.symbol("echo.v1.Echo/Unary").full_name == "echo.v1.Echo.Unary"
    with pytest.raises(CliError, match="has no method 'Nope'; methods: Unary"):
        schema.method("echo.v1.Echo/Nope")


def _result() -> BenchResult:
    return BenchResult(
        target="127.0.0.1:1", method="echo.v1.Echo/Unary", kind="unary", concurrency=2,
        connections=1, rate=None, elapsed_s=2.0, ok=10, errors={"UNAVAILABLE": 1},
        latency_ms={"min": 1.0, "p50": 2.0, "max": 3.0}, histogram=[(1.5, 4), (3.0, 6)],
        ok_per_second=[6, 4], warmup_calls=3,
    )  # fmt: skip


def test_html_report_is_well_formed_with_inline_svg_charts() -> None:
    page = to_html(_result())
    tags: list[str] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag: str, attrs: object) -> None:
            tags.append(tag)

    Collect().feed(page)
    assert tags.count("svg") == 2 and "rect" in tags and "polyline" in tags
    assert "11 (10 OK, 1 errors)" in page and "3 calls not measured" in page
    with_image = to_html(_result(), '<img src="data:image/png;base64,AAAA">')
    assert "<svg" not in with_image and "data:image/png;base64" in with_image


def test_markdown_report_tables() -> None:
    text = to_markdown(_result())
    assert "| Calls | 11 (10 OK, 1 errors) |" in text
    assert "| p50 | 2.000 |" in text
    assert "| UNAVAILABLE | 1 |" in text

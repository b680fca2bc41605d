"""``rpcfw call``: the four call kinds with JSON in and out, metadata, deadlines, errors and
TLS, the installed command against Echo servers (schema from --proto or from reflection)."""

from __future__ import annotations

import base64
import json

from .conftest import PROTO, ThreadServer, TlsFiles, run

UNARY = "echo.v1.Echo/Unary"


def test_unary_call_prints_the_response_as_one_json_document(
    cli_env: dict[str, str], plain_server: ThreadServer
) -> None:
    result = run(cli_env, "call", plain_server.address, UNARY, *PROTO, "-d", '{"message": "hi"}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"message": "hi", "serverId": "plain"}
    assert result.stdout.count("\n") == 1


def test_unary_call_with_the_schema_from_reflection(
    cli_env: dict[str, str], echo_server: ThreadServer
) -> None:
    result = run(cli_env, "call", echo_server.address, UNARY, "-d", '{"message": "reflected"}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"message": "reflected", "serverId": "cli"}


def test_server_streaming_prints_one_document_per_response(
    cli_env: dict[str, str], plain_server: ThreadServer
) -> None:
    result = run(
        cli_env, "call", plain_server.address, "echo.v1.Echo/ServerStream", *PROTO,
        "-d", '{"message": "s", "count": 3}',
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r.get("index", 0) for r in replies] == [0, 1, 2]
    assert {r["message"] for r in replies} == {"s"}


def test_client_streaming_reads_newline_delimited_json_from_stdin(
    cli_env: dict[str, str], plain_server: ThreadServer
) -> None:
    stdin = '{"message": "a"}\n{"message": "b"}\n{"message": "c"}\n'
    result = run(
        cli_env, "call", plain_server.address, "echo.v1.Echo/ClientStream", *PROTO, "-d", "@",
        stdin=stdin,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"message": "a,b,c", "index": 3, "serverId": "plain"}


def test_bidi_sends_each_stdin_document_and_prints_each_reply(
    cli_env: dict[str, str], echo_server: ThreadServer
) -> None:
    stdin = '{"message": "x"}\n{"message": "y"}\n'
    result = run(cli_env, "call", echo_server.address, "echo.v1.Echo/Bidi", "-d", "@", stdin=stdin)
    assert result.returncode == 0, result.stderr
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["message"], r.get("index", 0)) for r in replies] == [("x", 0), ("y", 1)]


def test_metadata_and_bin_keys_reach_the_server_and_trailers_go_to_stderr(
    cli_env: dict[str, str], plain_server: ThreadServer
) -> None:
    raw = bytes([0, 1, 2, 255])
    encoded = base64.b64encode(raw).decode()
    result = run(
        cli_env, "call", plain_server.address, UNARY, *PROTO, "-d", '{"message": "m"}',
        "-H", "x-team: billing", "-H", f"x-blob-bin:{encoded}", "-v",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # the Echo service echoes x- metadata back as headers and trailers
    assert "trailer x-team: billing" in result.stderr
    assert f"trailer x-blob-bin: {encoded}" in result.stderr
    assert "header x-team: billing" in result.stderr
    assert "status: OK (0)" in result.stderr
    assert "x-team" not in result.stdout


def test_bad_bin_metadata_is_refused_before_the_call(
    cli_env: dict[str, str], plain_server: ThreadServer
) -> None:
    result = run(cli_env, "call", plain_server.address, UNARY, *PROTO, "-H", "x-b-bin:***")
    assert result.returncode == 64
    assert "-bin value must be base64" in result.stderr
    assert "Traceback" not in result.stderr


def test_deadline_exceeded_exits_with_status_code_4(
    cli_env: dict[str, str], plain_server: ThreadServer
) -> None:
    result = run(
        cli_env, "call", plain_server.address, UNARY, *PROTO, "--timeout", "0.2",
        "-d", '{"message": "slow", "delayMs": 30000}',
    )  # fmt: skip
    assert result.returncode == 4, result.stderr
    assert "status: DEADLINE_EXCEEDED (4)" in result.stderr
    assert result.stdout == ""


def test_error_status_is_the_exit_code_with_message_on_stderr(
    cli_env: dict[str, str], plain_server: ThreadServer
) -> None:
    result = run(
        cli_env, "call", plain_server.address, UNARY, *PROTO,
        "-d", '{"message": "abort:5:no such thing"}',
    )  # fmt: skip
    assert result.returncode == 5
    assert "status: NOT_FOUND (5)" in result.stderr
    assert "message: no such thing" in result.stderr


def test_unknown_method_lists_the_methods(
    cli_env: dict[str, str], plain_server: ThreadServer
) -> None:
    result = run(cli_env, "call", plain_server.address, "echo.v1.Echo/Nope", *PROTO)
    assert result.returncode == 64
    assert "echo.v1.Echo has no method 'Nope'" in result.stderr
    assert "Unary, ServerStream, ClientStream, Bidi" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_service_via_reflection_lists_the_services(
    cli_env: dict[str, str], echo_server: ThreadServer
) -> None:
    result = run(cli_env, "call", echo_server.address, "nope.Svc/Do")
    assert result.returncode == 64
    assert "unknown service 'nope.Svc'" in result.stderr and "echo.v1.Echo" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_json_is_a_clear_error_without_traceback(
    cli_env: dict[str, str], plain_server: ThreadServer
) -> None:
    cases = {
        '{"message": ': "--data (line 1) is not valid JSON",
        '{"mesage": "x"}': 'has no field named "mesage"',
        "[1, 2]": "must be a JSON object for echo.v1.EchoRequest",
    }
    for data, expected in cases.items():
        result = run(cli_env, "call", plain_server.address, UNARY, *PROTO, "-d", data)
        assert result.returncode == 64, (data, result.stderr)
        assert expected in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.count("\n") == 1


def test_bad_json_on_stdin_mid_stream_ends_the_call_and_names_the_line(
    cli_env: dict[str, str], plain_server: ThreadServer
) -> None:
    result = run(
        cli_env, "call", plain_server.address, "echo.v1.Echo/Bidi", *PROTO, "-d", "@",
        stdin='{"message": "ok"}\n{"message" 1}\n',
    )  # fmt: skip
    assert result.returncode == 64
    assert "stdin (line 2) is not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_target_exits_unavailable(cli_env: dict[str, str]) -> None:
    result = run(cli_env, "call", "127.0.0.1:1", UNARY, *PROTO)
    assert result.returncode == 14
    assert "status: UNAVAILABLE (14)" in result.stderr


def test_call_over_tls_with_cacert_and_the_schema_from_reflection(
    cli_env: dict[str, str], tls_server: ThreadServer, tls_files: TlsFiles
) -> None:
    args = ["call", tls_server.address, UNARY, "-d", '{"message": "secure"}']
    result = run(cli_env, *args, "--cacert", str(tls_files.ca))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["message"] == "secure"
    insecure = run(cli_env, *args, "--insecure")
    assert insecure.returncode == 0, insecure.stderr
    untrusted = run(cli_env, *args, "--tls")  # the test CA is not in the system store
    assert untrusted.returncode == 14
    assert "certificate" in untrusted.stderr.lower()


def test_rich_status_details_go_to_stderr_as_json(
    cli_env: dict[str, str], plain_server: ThreadServer
) -> None:
    result = run(
        cli_env, "call", plain_server.address, UNARY, *PROTO, "-d", '{"message": "details:3:bad"}'
    )
    assert result.returncode == 3
    assert "status: INVALID_ARGUMENT (3)" in result.stderr
    assert 'detail google.protobuf.Duration: "7s"' in result.stderr
    assert 'detail google.protobuf.StringValue: "bad"' in result.stderr

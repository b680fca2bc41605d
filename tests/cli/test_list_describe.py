"""``rpcfw list`` and ``rpcfw describe``, from server reflection and from --proto."""

from __future__ import annotations

from .conftest import PROTO, ThreadServer, run


def test_list_services_and_methods_from_reflection(
    cli_env: dict[str, str], echo_server: ThreadServer
) -> None:
    services = run(cli_env, "list", echo_server.address)
    assert services.returncode == 0, services.stderr
    assert "echo.v1.Echo" in services.stdout.splitlines()
    assert "grpc.health.v1.Health" in services.stdout.splitlines()
    methods = run(cli_env, "list", echo_server.address, "echo.v1.Echo")
    assert methods.returncode == 0, methods.stderr
    assert methods.stdout.splitlines() == [
        "echo.v1.Echo/Unary",
        "echo.v1.Echo/ServerStream",
        "echo.v1.Echo/ClientStream",
        "echo.v1.Echo/Bidi",
    ]


def test_list_from_proto_needs_no_reflection(
    cli_env: dict[str, str], plain_server: ThreadServer
) -> None:
    result = run(cli_env, "list", plain_server.address, *PROTO)
    assert (result.returncode, result.stdout) == (0, "echo.v1.Echo\n")


def test_list_without_reflection_says_to_use_proto(
    cli_env: dict[str, str], plain_server: ThreadServer
) -> None:
    result = run(cli_env, "list", plain_server.address)
    assert result.returncode == 12  # UNIMPLEMENTED
    assert "does not serve server reflection" in result.stderr and "--proto" in result.stderr
    assert "Traceback" not in result.stderr


def test_describe_service_method_message_and_field(
    cli_env: dict[str, str], echo_server: ThreadServer
) -> None:
    service = run(cli_env, "describe", echo_server.address, "echo.v1.Echo")
    assert service.returncode == 0, service.stderr
    assert "echo.v1.Echo is a service:" in service.stdout
    assert (
        "rpc Bidi ( stream .echo.v1.EchoRequest ) returns ( stream .echo.v1.EchoResponse );"
        in service.stdout
    )
    method = run(cli_env, "describe", echo_server.address, "echo.v1.Echo/ServerStream")
    assert "echo.v1.Echo.ServerStream is a method:" in method.stdout
    message = run(cli_env, "describe", echo_server.address, "echo.v1.EchoRequest")
    assert message.returncode == 0, message.stderr
    assert "message EchoRequest {" in message.stdout and "int32 delay_ms = 4;" in message.stdout
    field = run(cli_env, "describe", echo_server.address, "echo.v1.EchoResponse.server_id")
    assert field.returncode == 0, field.stderr
    assert "string server_id = 4;" in field.stdout


def test_describe_from_proto_and_unknown_symbol(
    cli_env: dict[str, str], plain_server: ThreadServer, echo_server: ThreadServer
) -> None:
    result = run(cli_env, "describe", plain_server.address, "echo.v1.EchoResponse", *PROTO)
    assert result.returncode == 0, result.stderr
    assert "string server_id = 4;" in result.stdout
    for target, extra in ((plain_server.address, PROTO), (echo_server.address, [])):
        unknown = run(cli_env, "describe", target, "nope.Nothing", *extra)
        assert unknown.returncode == 64, unknown.stderr
        assert "'nope.Nothing' not found" in unknown.stderr
        assert "Traceback" not in unknown.stderr

"""Unix domain socket targets (gRPC's grammar), their resolver and endpoints, and how unix
socket addresses read in logs and peers. Pure: no socket is opened."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import rpcfw
from rpcfw._unix import UnixAddress, listening_address, parse_unix, socket_address, unix_peer
from rpcfw.endpoint import Endpoint
from rpcfw.resolver import UnixResolver, create_resolver, parse_target


@pytest.mark.parametrize(
    ("target", "scheme", "endpoint"),
    [
        ("unix:/run/echo.sock", "unix", "/run/echo.sock"),
        ("unix:///run/echo.sock", "unix", "/run/echo.sock"),
        ("unix:relative/echo.sock", "unix", "relative/echo.sock"),
        ("unix:echo.sock", "unix", "echo.sock"),
        ("unix:50051", "unix", "50051"),  # the scheme wins, as in gRPC: a path, not a port
        ("UNIX:/run/echo.sock", "unix", "/run/echo.sock"),
        ("unix-abstract:echo", "unix-abstract", "echo"),
        ("unix-abstract:/with/slash", "unix-abstract", "/with/slash"),
    ],
)
def test_unix_forms_parse_to_the_socket_path(target: str, scheme: str, endpoint: str) -> None:
    parsed = parse_target(target)
    assert (parsed.scheme, parsed.authority, parsed.endpoint, parsed.raw) == (
        scheme,
        "",
        endpoint,
        target,
    )


@pytest.mark.parametrize(
    "target", ["localhost:50051", "127.0.0.1:50051", "[::1]:50051", "unixhost:50051"]
)
def test_host_port_targets_stay_static(target: str) -> None:
    assert (parse_target(target).scheme, parse_target(target).endpoint) == ("static", target)


def test_other_schemes_are_unchanged() -> None:
    assert parse_target("dns:///echo.internal:50051").scheme == "dns"
    assert parse_target("static:///a:1,b:2").endpoint == "a:1,b:2"


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("unix:", "empty socket path"),
        ("unix://", "empty socket path"),
        ("unix:///", "empty socket path"),
        ("unix:/", "empty socket path"),
        ("unix://host/run/echo.sock", "no authority"),
        ("unix:/run/a\0b.sock", "NUL"),
        ("unix-abstract:", "empty abstract socket name"),
        ("unix-abstract://name", "write unix-abstract:NAME"),
    ],
)
def test_malformed_unix_targets_are_rejected_with_the_reason(target: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_target(target)
    with pytest.raises(ValueError, match="invalid target"):
        rpcfw.Channel(target)  # at construction, not at the first call


def test_non_unix_text_is_not_a_unix_address() -> None:
    assert parse_unix("localhost:50051") is None
    assert parse_unix("/run/echo.sock") is None
    assert socket_address("127.0.0.1") is None
    assert socket_address("::1") is None


def _resolve(target: str) -> tuple[UnixResolver, list[Endpoint]]:
    pushed: list[Endpoint] = []

    def listener(update: Sequence[Endpoint] | Exception) -> None:
        assert not isinstance(update, Exception)
        pushed.extend(update)

    resolver = create_resolver(parse_target(target), listener)
    assert isinstance(resolver, UnixResolver)
    resolver.start()
    return resolver, pushed


def test_unix_resolver_pushes_one_endpoint_that_names_the_socket() -> None:
    resolver, pushed = _resolve("unix:///run/echo.sock")
    assert pushed == [Endpoint("unix:/run/echo.sock", 0)]
    assert str(pushed[0]) == "unix:/run/echo.sock"  # logs show the path
    assert socket_address(pushed[0].host) == "/run/echo.sock"
    assert resolver.authority == "localhost"


def test_unix_abstract_resolver_endpoint_dials_a_nul_prefixed_address() -> None:
    resolver, pushed = _resolve("unix-abstract:echo")
    assert pushed == [Endpoint("unix-abstract:echo", 0)]
    assert str(pushed[0]) == "unix-abstract:echo"
    assert socket_address(pushed[0].host) == "\0echo"
    assert resolver.authority == "localhost"


def test_relative_path_is_dialed_as_written() -> None:
    _, pushed = _resolve("unix:run/echo.sock")
    assert socket_address(pushed[0].host) == "run/echo.sock"


def test_channel_sends_localhost_as_authority_for_unix_targets() -> None:
    headers = dict(rpcfw.Channel("unix:/run/echo.sock")._base_headers)
    assert headers[":authority"] == "localhost"
    assert dict(rpcfw.Channel("unix-abstract:x")._base_headers)[":authority"] == "localhost"


def test_unix_addresses_read_as_targets_in_peers_and_listening_addresses() -> None:
    assert unix_peer("") == "unix:"  # an unnamed client socket
    assert unix_peer("/run/echo.sock") == "unix:/run/echo.sock"
    assert unix_peer(b"\0echo") == "unix-abstract:echo"  # Linux returns abstract names as bytes
    assert unix_peer("\0echo") == "unix-abstract:echo"
    assert listening_address("/run/echo.sock") == ("unix:/run/echo.sock", 0)
    assert listening_address(("127.0.0.1", 50051)) == ("127.0.0.1", 50051)
    assert str(UnixAddress("echo", abstract=True)) == "unix-abstract:echo"
    assert UnixAddress("echo", abstract=True).socket_address == "\0echo"

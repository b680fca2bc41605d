from __future__ import annotations

import pytest

from rpcfw.endpoint import Endpoint
from rpcfw.resolver import parse_address, parse_target
from rpcfw.resolver.target import parse_address_list


def test_bare_host_port_is_a_static_target() -> None:
    target = parse_target("127.0.0.1:50051")
    assert (target.scheme, target.endpoint) == ("static", "127.0.0.1:50051")


def test_scheme_authority_and_endpoint_are_split() -> None:
    target = parse_target("etcd://10.0.0.1:2379,10.0.0.2:2379/echo.v1.Echo")
    assert (target.scheme, target.authority, target.endpoint) == (
        "etcd",
        "10.0.0.1:2379,10.0.0.2:2379",
        "echo.v1.Echo",
    )
    assert parse_target("static:///a:1,b:2").endpoint == "a:1,b:2"


def test_address_list_keeps_order_and_reads_ipv6() -> None:
    assert parse_address_list("a:1,b:2, [::1]:3") == [
        Endpoint("a", 1),
        Endpoint("b", 2),
        Endpoint("::1", 3),
    ]
    assert str(Endpoint("::1", 3)) == "[::1]:3"


def test_endpoint_identity_ignores_attributes_and_weight_defaults_to_one() -> None:
    assert Endpoint("a", 1, {"weight": 5}) == Endpoint("a", 1)
    assert Endpoint("a", 1).weight == 1
    assert Endpoint("a", 1, {"weight": "bad"}).weight == 1


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("nohost", "expected host:port"),
        ("host:http", "port must be a number"),
        ("host:70000", "out of range"),
        (":80", "empty host"),
        ("[::1]80", r"expected \[host\]:port"),
    ],
)
def test_malformed_address_is_rejected_with_the_reason(address: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_address(address)


@pytest.mark.parametrize("target", ["nohost", "://x", "bad scheme://x/y"])
def test_malformed_target_is_rejected(target: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        parse_target(target)

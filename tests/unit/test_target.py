from __future__ import annotations

import pytest

from rpcfw.client._target import Address, parse_target


def test_host_port_target() -> None:
    target = parse_target("127.0.0.1:50051")
    assert target.addresses == (Address("127.0.0.1", 50051),)
    assert target.authority == "127.0.0.1:50051"


def test_static_target_lists_every_address_in_order() -> None:
    target = parse_target("static:///a:1,b:2, [::1]:3")
    assert target.addresses == (Address("a", 1), Address("b", 2), Address("::1", 3))
    assert str(target.addresses[2]) == "[::1]:3"


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("nohost", "expected host:port"),
        ("host:http", "port must be a number"),
        ("host:70000", "out of range"),
        (":80", "empty host"),
        ("static:///", "lists no addresses"),
        ("zk://x/y", "unsupported target scheme"),
        ("[::1]80", "expected [host]:port"),
    ],
)
def test_malformed_target_is_rejected_with_the_reason(target: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        parse_target(target)

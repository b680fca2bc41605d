"""A unary attempt that fails after its response message arrived is committed: never retried
(fault: the trailers carry UNAVAILABLE after the message), on a fake channel, no IO."""

from __future__ import annotations

from typing import Any

import pytest

from rpcfw import RpcError, Status
from rpcfw.client._retry import MethodPolicy, unary_with_policy
from rpcfw.policy import MethodConfig, RetryPolicy


class FakeCall:
    def __init__(self, message: object) -> None:
        self.message = message

    def __enter__(self) -> FakeCall:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    async def recv(self) -> object:
        return self.message

    async def finish(self) -> None:
        raise RpcError(Status.UNAVAILABLE, "after the message")


class FakeChannel:
    def __init__(self, message: object) -> None:
        self.message = message
        self.extra: list[object] = []

    async def _open(self, *args: Any) -> FakeCall:
        self.extra.append(args[-1])
        return FakeCall(self.message)


POLICY = MethodPolicy(
    MethodConfig(RetryPolicy(3, 0.001, 0.001, 1, frozenset({Status.UNAVAILABLE}))), None
)


async def test_failure_after_the_response_message_is_not_retried() -> None:
    channel = FakeChannel(message="reply")
    with pytest.raises(RpcError) as info:
        await unary_with_policy(channel, POLICY, None, "req", {}, None)  # type: ignore[arg-type]
    assert info.value.status is Status.UNAVAILABLE and channel.extra == [[]]


async def test_failure_before_any_message_is_retried() -> None:
    channel = FakeChannel(message=None)
    with pytest.raises(RpcError):
        await unary_with_policy(channel, POLICY, None, "req", {}, None)  # type: ignore[arg-type]
    assert channel.extra == [
        [],
        [("grpc-previous-rpc-attempts", "1")],
        [("grpc-previous-rpc-attempts", "2")],
    ]

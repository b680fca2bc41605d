"""Unary retries and hedging from a service config, against a scripted rpcfw server.

Each test names the fault its server injects; the server counts attempts and records the
``grpc-previous-rpc-attempts`` each one carried, so the checks are counts and order.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import anyio
import pytest

import rpcfw
from rpcfw import Status
from tests.echo_service import wait_until

PUSHBACK = "grpc-retry-pushback-ms"
PREVIOUS = "grpc-previous-rpc-attempts"
NAME = [{"service": "echo.v1.Echo"}]


def retry_config(
    max_attempts: int = 5,
    initial: str = "0.001s",
    codes: tuple[str, ...] = ("UNAVAILABLE",),
    **extra: Any,
) -> dict[str, Any]:
    return {
        "methodConfig": [
            {
                "name": NAME,
                "retryPolicy": {
                    "maxAttempts": max_attempts,
                    "initialBackoff": initial,
                    "maxBackoff": initial,
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": list(codes),
                },
                **extra,
            }
        ]
    }


def hedging_config(delay: str, max_attempts: int = 2) -> dict[str, Any]:
    policy = {
        "maxAttempts": max_attempts,
        "hedgingDelay": delay,
        "nonFatalStatusCodes": ["UNAVAILABLE"],
    }
    return {"methodConfig": [{"name": NAME, "hedgingPolicy": policy}]}


def make_scripted(mod: ModuleType) -> Any:
    class Scripted(mod.EchoBase):  # type: ignore[misc,name-defined]
        """Unary answers by script, one step per attempt: "ok", "slow" (until cancelled),
        ``(status, pushback or None)``, or ``("late", status)`` (fails after 100 ms)."""

        def __init__(self) -> None:
            self.script: list[Any] = []
            self.previous: list[str | None] = []
            self.cancelled = 0

        async def unary(self, request: Any, context: rpcfw.CallContext) -> Any:
            value = context.invocation_metadata.get(PREVIOUS)
            self.previous.append(None if value is None else str(value))
            step = self.script.pop(0) if self.script else "ok"
            if step == "slow":
                try:
                    await anyio.sleep(30)  # the slow attempt under test: waits until cancelled
                except anyio.get_cancelled_exc_class():
                    self.cancelled += 1
                    raise
            elif isinstance(step, tuple) and step[0] == "late":
                await asyncio.sleep(0.1)  # the slow failure under test (each attempt >= 100 ms)
                context.abort(step[1], "scripted late failure")
            elif isinstance(step, tuple):
                status, pushback = step
                if pushback is not None:
                    context.set_trailing_metadata([(PUSHBACK, pushback)])
                context.abort(status, "scripted failure")
            return mod.EchoResponse(message=request.message, index=len(self.previous))

        async def server_stream(self, request: Any, context: rpcfw.CallContext) -> Any:
            raise NotImplementedError

        async def client_stream(self, requests: Any, context: rpcfw.CallContext) -> Any:
            raise NotImplementedError

        async def bidi(self, requests: Any, context: rpcfw.CallContext) -> Any:
            raise NotImplementedError

    return Scripted()


@pytest.fixture
async def scripted(echo_pb: ModuleType) -> AsyncIterator[tuple[Any, rpcfw.Server]]:
    service = make_scripted(echo_pb)
    server = rpcfw.Server([service])
    await server.start("127.0.0.1", 0)
    yield service, server
    await server.stop(grace=1)


@pytest.fixture
def idempotent_unary(echo_pb: ModuleType) -> rpcfw.MethodSpec[Any, Any]:
    """Echo's Unary as if its proto said ``option idempotency_level = IDEMPOTENT``."""
    return dataclasses.replace(echo_pb.ECHO_UNARY, idempotent=True)


UNAVAILABLE = (Status.UNAVAILABLE, None)


async def test_fails_twice_unavailable_then_succeeds_on_the_third_attempt(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any
) -> None:
    service, server = scripted
    service.script = [UNAVAILABLE, UNAVAILABLE, "ok"]
    async with rpcfw.Channel(server.address, service_config=retry_config()) as channel:
        reply = await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest(message="hi"))
    assert reply.message == "hi" and reply.index == 3
    assert service.previous == [None, "1", "2"]


async def test_attempts_stop_at_max_attempts(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any
) -> None:
    service, server = scripted
    service.script = [UNAVAILABLE] * 10
    async with rpcfw.Channel(server.address, service_config=retry_config(3)) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest())
    assert info.value.status is Status.UNAVAILABLE
    assert service.previous == [None, "1", "2"]


async def test_non_retryable_status_makes_one_attempt(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any
) -> None:
    service, server = scripted
    service.script = [(Status.INTERNAL, None), "ok"]
    async with rpcfw.Channel(server.address, service_config=retry_config()) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest())
    assert info.value.status is Status.INTERNAL and service.previous == [None]


async def test_pushback_replaces_the_backoff(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any
) -> None:
    """Backoff of 100 s: only the server's 0 ms pushback lets the retries happen now."""
    service, server = scripted
    service.script = [(Status.UNAVAILABLE, "0"), (Status.UNAVAILABLE, "0"), "ok"]
    config = retry_config(initial="100s")
    async with rpcfw.Channel(server.address, service_config=config) as channel:
        reply = await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest(), timeout=20)
    assert reply.index == 3 and service.previous == [None, "1", "2"]


@pytest.mark.parametrize("pushback", ["-1", "later"])
async def test_negative_or_invalid_pushback_stops_retries(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any, pushback: str
) -> None:
    service, server = scripted
    service.script = [(Status.UNAVAILABLE, pushback), "ok"]
    async with rpcfw.Channel(server.address, service_config=retry_config()) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest())
    assert info.value.status is Status.UNAVAILABLE and service.previous == [None]
    assert info.value.trailing_metadata is not None
    assert info.value.trailing_metadata.get(PUSHBACK) == pushback


async def test_deadline_covers_all_attempts(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any
) -> None:
    """Every attempt fails UNAVAILABLE after 100 ms: a 250 ms deadline allows 3 at most."""
    service, server = scripted
    service.script = [("late", Status.UNAVAILABLE)] * 5
    async with rpcfw.Channel(server.address, service_config=retry_config()) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest(), timeout=0.25)
    assert info.value.status is Status.DEADLINE_EXCEEDED
    # at most 3: each attempt takes at least 100 ms, so a 4th could not start before 250 ms (a
    # per-attempt deadline would allow all 5 and end UNAVAILABLE); at least 2: the first retry
    # starts about 100 ms in, with 150 ms of slack before the deadline
    assert 2 <= len(service.previous) <= 3


async def test_slow_server_is_one_attempt_then_deadline_exceeded(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any
) -> None:
    service, server = scripted
    service.script = ["slow", "ok"]
    async with rpcfw.Channel(server.address, service_config=retry_config()) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest(), timeout=0.2)
    assert info.value.status is Status.DEADLINE_EXCEEDED and service.previous == [None]


async def test_service_config_timeout_applies(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any
) -> None:
    service, server = scripted
    service.script = ["slow"]
    config = retry_config(timeout="0.2s")
    async with rpcfw.Channel(server.address, service_config=config) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest())
    assert info.value.status is Status.DEADLINE_EXCEEDED


async def test_throttling_stops_retries_after_enough_failures(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any
) -> None:
    """maxTokens 4: the 2nd failure leaves 2 tokens (not > 2), so no more retries."""
    service, server = scripted
    service.script = [UNAVAILABLE] * 10
    config = {**retry_config(), "retryThrottling": {"maxTokens": 4, "tokenRatio": 0.1}}
    async with rpcfw.Channel(server.address, service_config=config) as channel:
        for _ in range(2):
            with pytest.raises(rpcfw.RpcError):
                await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest())
    assert service.previous == [None, "1", None]  # call 1: 2 attempts, call 2: 1


async def test_non_idempotent_method_needs_the_opt_in(echo_pb: ModuleType, scripted: Any) -> None:
    service, server = scripted
    service.script = [UNAVAILABLE, "ok"]
    async with rpcfw.Channel(server.address, service_config=retry_config()) as channel:
        with pytest.raises(rpcfw.RpcError):
            await channel.unary_unary(echo_pb.ECHO_UNARY, echo_pb.EchoRequest())
    assert service.previous == [None]
    service.script, service.previous = [UNAVAILABLE, "ok"], []
    config = retry_config(retryNonIdempotent=True)
    async with rpcfw.Channel(server.address, service_config=config) as channel:
        reply = await echo_pb.EchoStub(channel).unary(echo_pb.EchoRequest())
    assert reply.index == 2 and service.previous == [None, "1"]


async def test_hedging_first_server_slow_second_answers_first_is_cancelled(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any
) -> None:
    service, server = scripted
    service.script = ["slow", "ok"]
    config = hedging_config("0.05s")
    async with rpcfw.Channel(server.address, service_config=config) as channel:
        reply = await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest(), timeout=10)
        assert reply.index == 2
        await wait_until(lambda: service.cancelled == 1)
    assert service.previous == [None, "1"]


async def test_hedging_non_fatal_status_starts_the_next_hedge_at_once(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any
) -> None:
    """hedgingDelay 100 s: only the non-fatal UNAVAILABLE lets the 2nd attempt start now."""
    service, server = scripted
    service.script = [UNAVAILABLE, "ok"]
    async with rpcfw.Channel(server.address, service_config=hedging_config("100s")) as channel:
        reply = await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest(), timeout=10)
    assert reply.index == 2 and service.previous == [None, "1"]


async def test_hedging_fatal_status_ends_the_call(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any
) -> None:
    service, server = scripted
    service.script = [(Status.NOT_FOUND, None), "ok"]
    async with rpcfw.Channel(server.address, service_config=hedging_config("100s", 3)) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest(), timeout=10)
    assert info.value.status is Status.NOT_FOUND and service.previous == [None]


async def test_hedging_all_attempts_fail_non_fatally(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any
) -> None:
    service, server = scripted
    service.script = [UNAVAILABLE] * 3
    async with rpcfw.Channel(server.address, service_config=hedging_config("100s", 3)) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest(), timeout=10)
    assert info.value.status is Status.UNAVAILABLE
    assert service.previous == [None, "1", "2"]


async def test_methods_without_config_take_the_fast_path(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any
) -> None:
    service, server = scripted
    service.script = [UNAVAILABLE, "ok"]
    config = {"methodConfig": [{"name": [{"service": "other.Svc"}], "retryPolicy": {
        "maxAttempts": 3, "initialBackoff": "0.01s", "maxBackoff": "0.01s",
        "backoffMultiplier": 1, "retryableStatusCodes": ["UNAVAILABLE"]}}]}  # fmt: skip
    async with rpcfw.Channel(server.address, service_config=config) as channel:
        with pytest.raises(rpcfw.RpcError):
            await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest())
        assert channel._method_policies == {idempotent_unary.path: None}
    assert service.previous == [None]


def test_retries_on_trio(echo_pb: ModuleType, idempotent_unary: Any) -> None:
    """The retry loop on the anyio runtime (trio): two UNAVAILABLE answers, then OK."""

    async def main() -> tuple[int, list[str | None]]:
        service = make_scripted(echo_pb)
        service.script = [UNAVAILABLE, UNAVAILABLE, "ok"]
        server = rpcfw.Server([service])
        async with anyio.create_task_group() as group:
            port = await group.start(server.serve, "127.0.0.1", 0)
            with anyio.fail_after(10):  # liveness bound only
                async with rpcfw.Channel(
                    f"127.0.0.1:{port}", service_config=retry_config()
                ) as channel:
                    reply = await channel.unary_unary(
                        idempotent_unary, echo_pb.EchoRequest(message="t")
                    )
            group.cancel_scope.cancel()
        return int(reply.index), list(service.previous)

    assert anyio.run(main, backend="trio") == (3, [None, "1", "2"])


async def test_hedging_pushback_holds_the_next_hedge_back(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any
) -> None:
    """Fault: UNAVAILABLE (non-fatal) with a 100 s pushback. Without it the next hedge would
    start at once (see the non-fatal test); with it none starts before the 0.3 s deadline."""
    service, server = scripted
    service.script = [(Status.UNAVAILABLE, "100000"), "ok"]
    async with rpcfw.Channel(server.address, service_config=hedging_config("100s", 3)) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest(), timeout=0.3)
    assert info.value.status is Status.UNAVAILABLE and service.previous == [None]


async def test_hedging_negative_pushback_stops_hedging(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any
) -> None:
    """Fault: UNAVAILABLE with pushback -1: no further hedge, the failure is the outcome."""
    service, server = scripted
    service.script = [(Status.UNAVAILABLE, "-1"), "ok"]
    async with rpcfw.Channel(server.address, service_config=hedging_config("100s", 3)) as channel:
        with pytest.raises(rpcfw.RpcError) as info:
            await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest(), timeout=10)
    assert info.value.status is Status.UNAVAILABLE and service.previous == [None]


async def test_hedging_throttling_stops_further_hedges(
    echo_pb: ModuleType, scripted: Any, idempotent_unary: Any
) -> None:
    """Fault: every attempt UNAVAILABLE (non-fatal). maxTokens 4: after two failures 2 tokens
    are left (not > 2), so call 1 starts no 3rd hedge and call 2 gets only its first."""
    service, server = scripted
    service.script = [UNAVAILABLE] * 10
    config = {**hedging_config("100s", 3), "retryThrottling": {"maxTokens": 4, "tokenRatio": 0.1}}
    async with rpcfw.Channel(server.address, service_config=config) as channel:
        for _ in range(2):
            with pytest.raises(rpcfw.RpcError):
                await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest(), timeout=10)
    assert service.previous == [None, "1", None]


def test_hedging_on_trio(echo_pb: ModuleType, idempotent_unary: Any) -> None:
    """The hedging race on the anyio runtime (trio). Fault: the first attempt never answers;
    the hedge 50 ms later answers and the first is cancelled (the server sees it)."""

    async def main() -> tuple[int, list[str | None], int]:
        service = make_scripted(echo_pb)
        service.script = ["slow", "ok"]
        server = rpcfw.Server([service])
        async with anyio.create_task_group() as group:
            port = await group.start(server.serve, "127.0.0.1", 0)
            with anyio.fail_after(10):  # liveness bound only
                async with rpcfw.Channel(
                    f"127.0.0.1:{port}", service_config=hedging_config("0.05s")
                ) as channel:
                    reply = await channel.unary_unary(idempotent_unary, echo_pb.EchoRequest())
                    await wait_until(lambda: service.cancelled == 1)
            group.cancel_scope.cancel()
        return int(reply.index), list(service.previous), service.cancelled

    assert anyio.run(main, backend="trio") == (2, [None, "1"], 1)

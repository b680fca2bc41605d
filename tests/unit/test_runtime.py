"""The channel runtimes (asyncio and anyio/trio) and the anyio call guard, without sockets:
task handles keep a task's failure (logged or not, as asked), ``wait`` never raises the task's
outcome, timers cancel, and a call guard shared by two tasks wakes both with its error."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from rpcfw._guard import AnyioCallGuard
from rpcfw._runtime import AnyioRuntime, AsyncioRuntime, ChannelRuntime

BACKENDS = ["asyncio", "trio"]


async def _with_runtime(backend_runtime: str, body: Any) -> Any:
    if backend_runtime == "asyncio":
        return await body(AsyncioRuntime())
    async with anyio.create_task_group() as group:
        result = await body(AnyioRuntime(group))
        group.cancel_scope.cancel()
    return result


def run(backend: str, body: Any) -> Any:
    return anyio.run(_with_runtime, backend, body, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_task_failure_is_kept_and_logged_only_when_reported(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def body(runtime: ChannelRuntime) -> list[Any]:
        async def fail() -> None:
            raise ValueError("broken")

        loud = runtime.spawn(fail, "loud task")
        quiet = runtime.spawn(fail, "quiet task", report=False)
        await loud.wait()
        await quiet.wait()
        return [type(loud.error()), type(quiet.error()), loud.done(), quiet.done()]

    with caplog.at_level(logging.ERROR, logger="rpcfw.client"):
        assert run(backend, body) == [ValueError, ValueError, True, True]
    logged = [r.getMessage() for r in caplog.records]
    assert logged == ["loud task failed"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancelled_task_ends_without_error_and_timer_cancel_stops_its_callback(
    backend: str,
) -> None:
    async def body(runtime: ChannelRuntime) -> list[Any]:
        fired: list[str] = []
        started = runtime.event()

        async def forever() -> None:
            started.set()
            await anyio.sleep_forever()

        task = runtime.spawn(forever, "forever")
        await started.wait()
        task.cancel()
        await task.wait()
        timer = runtime.call_later(0.0, lambda: fired.append("cancelled timer"))
        timer.cancel()
        done = runtime.event()

        def fire() -> None:
            fired.append("timer")
            done.set()

        runtime.call_later(0.0, fire)
        await done.wait()
        return [task.done(), task.error(), fired]

    assert run(backend, body) == [True, None, ["timer"]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_timeout_raises_timeout_error(backend: str) -> None:
    async def body(runtime: ChannelRuntime) -> bool:
        with pytest.raises(TimeoutError):
            async with runtime.timeout(0.0):
                await anyio.sleep_forever()
        return True

    assert run(backend, body)


@pytest.mark.parametrize("backend", BACKENDS)
def test_anyio_call_guard_wakes_two_tasks_inside_it_with_its_error(backend: str) -> None:
    """A bidi call's reader and writer wait inside one guard; cancelling the call wakes both
    with the call's error, and a cancellation from outside stays a cancellation."""

    async def main() -> list[Any]:
        guard = AnyioCallGuard()
        inside = 0
        both_inside = anyio.Event()
        seen: list[Any] = []

        async def wait_in_guard() -> None:
            nonlocal inside
            try:
                with guard:
                    inside += 1
                    if inside == 2:
                        both_inside.set()
                    await anyio.sleep_forever()
            except LookupError as exc:
                seen.append(str(exc))

        async with anyio.create_task_group() as group:
            group.start_soon(wait_in_guard)
            group.start_soon(wait_in_guard)
            await both_inside.wait()
            guard.cancel(LookupError("call ended"))
        outer = AnyioCallGuard()
        with anyio.CancelScope() as scope:
            with outer:
                scope.cancel()
                await anyio.sleep_forever()
        seen.append(scope.cancelled_caught and outer.error is None)
        return seen

    assert anyio.run(main, backend=backend) == ["call ended", "call ended", True]

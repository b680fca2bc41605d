from __future__ import annotations

import asyncio

import pytest

from rpcfw._guard import CallGuard


class Boom(Exception):
    pass


async def test_guard_cancel_wakes_waiting_task_with_its_error() -> None:
    guard = CallGuard()
    entered = asyncio.Event()

    async def wait() -> None:
        with guard:
            entered.set()
            await asyncio.sleep(10)  # a wait only the guard ends (the test's liveness bound)

    task = asyncio.create_task(wait())
    await entered.wait()
    guard.cancel(Boom("stream reset"))
    with pytest.raises(Boom, match="stream reset"):
        await task
    assert task.cancelling() == 0  # the cancellation was converted, not left pending


async def test_guard_deadline_fires_once_and_first_error_wins() -> None:
    guard = CallGuard()
    loop = asyncio.get_running_loop()
    guard.set_deadline(loop.time() + 0.01, Boom("deadline"))
    with pytest.raises(Boom, match="deadline"), guard:
        await asyncio.sleep(5)  # a wait only the guard's deadline ends
    guard.cancel(Boom("later"))
    with pytest.raises(Boom, match="deadline"), guard:
        pass


async def test_guard_does_not_swallow_outside_cancellation() -> None:
    guard = CallGuard()
    entered = asyncio.Event()

    async def wait() -> None:
        with guard:
            entered.set()
            await asyncio.sleep(10)  # a wait only the cancellation ends

    task = asyncio.create_task(wait())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_closed_guard_deadline_never_fires() -> None:
    guard = CallGuard()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.01
    guard.set_deadline(deadline, Boom("deadline"))
    guard.close()
    past_it = asyncio.Event()
    loop.call_at(deadline + 0.001, past_it.set)  # timers run in time order: the deadline's
    await past_it.wait()  # would have run before this one
    assert guard.error is None


async def test_guard_keeps_a_callers_cancellation_that_arrives_with_its_own() -> None:
    """Fault: the caller's task is cancelled from outside in the same instant the guard ends
    the call (deadline, reset): the caller's cancellation must not be swallowed."""
    guard = CallGuard()
    entered = asyncio.Event()

    async def wait() -> None:
        with guard:
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(wait())
    await entered.wait()
    task.cancel()  # the caller's own cancellation
    guard.cancel(Boom("deadline"))  # and the guard's, before the task runs again
    with pytest.raises(asyncio.CancelledError):
        await task

"""The channel's runtime: tasks, timers, events, clocks and connections on the running backend.

A channel picks its runtime at its first call. On asyncio (uvloop included) it is
``AsyncioRuntime``: the fast path, plain tasks and loop timers, connections as ``AioConnection``
protocols. On any other anyio backend (trio) it is ``AnyioRuntime``: every task the channel
starts (connection readers and writers, connect loops, health watches, resolvers, timers) runs
in the task group that ``async with Channel(...)`` opened, and connections are
``AnyioConnection`` on anyio byte streams.

A task's failure is logged under the name it was started with, never raised into the owner;
the owner keeps the ``TaskHandle``, cancels it and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import anyio
from anyio.abc import TaskGroup

from ._clock import Cancellable

__all__ = [
    "AnyioRuntime",
    "AsyncioRuntime",
    "ChannelRuntime",
    "EventLike",
    "TaskHandle",
    "on_asyncio",
]

log = logging.getLogger("rpcfw.client")


class TaskHandle(Protocol):
    def cancel(self) -> None: ...

    def done(self) -> bool: ...

    def error(self) -> BaseException | None:
        """The exception the task ended with (None while it runs, after success or a
        cancellation)."""

    async def wait(self) -> None:
        """Until the task has ended. Never raises the task's outcome; a cancellation of the
        caller propagates (and only cancels this wait)."""


class EventLike(Protocol):
    def set(self) -> None: ...

    def is_set(self) -> bool: ...

    async def wait(self) -> object: ...


class ChannelRuntime(Protocol):
    anyio: bool

    def now(self) -> float: ...

    def spawn(
        self, fn: Callable[[], Awaitable[None]], what: str, *, report: bool = True
    ) -> TaskHandle:
        """Run ``fn`` as a task; its failure is logged as ``what`` when ``report``, else only
        kept for ``TaskHandle.error``."""

    def call_later(self, delay: float, fn: Callable[[], None]) -> Cancellable: ...

    def event(self) -> EventLike: ...

    async def sleep(self, delay: float) -> None: ...

    def timeout(self, delay: float) -> AbstractAsyncContextManager[object]:
        """Raises TimeoutError when the block takes longer than ``delay``."""


def on_asyncio() -> bool:
    """Whether the running backend is asyncio (uvloop included), else another anyio backend."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# -- asyncio -------------------------------------------------------------------------------
class _AsyncioTask:
    __slots__ = ("_report", "_task", "_what")

    def __init__(self, task: asyncio.Task[None], what: str, report: bool) -> None:
        self._task = task
        self._what = what
        self._report = report
        task.add_done_callback(self._log_failure)

    def _log_failure(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None and self._report:
            log.error("%s failed", self._what, exc_info=exc)

    def cancel(self) -> None:
        self._task.cancel()

    def done(self) -> bool:
        return self._task.done()

    def error(self) -> BaseException | None:
        task = self._task
        if not task.done() or task.cancelled():
            return None
        return task.exception()

    async def wait(self) -> None:
        await asyncio.wait([self._task])


class AsyncioRuntime:
    anyio = False

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()

    def now(self) -> float:
        return self.loop.time()

    def spawn(
        self, fn: Callable[[], Awaitable[None]], what: str, *, report: bool = True
    ) -> TaskHandle:
        async def body() -> None:
            await fn()

        return _AsyncioTask(self.loop.create_task(body()), what, report)

    def call_later(self, delay: float, fn: Callable[[], None]) -> Cancellable:
        return self.loop.call_later(delay, fn)

    def event(self) -> EventLike:
        return asyncio.Event()

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(delay)

    def timeout(self, delay: float) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(delay)


# -- anyio (trio) ----------------------------------------------------------------------------
class _AnyioTask:
    __slots__ = ("_done", "_error", "scope")

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self._done = anyio.Event()
        self._error: BaseException | None = None

    def cancel(self) -> None:
        self.scope.cancel()

    def done(self) -> bool:
        return self._done.is_set()

    def error(self) -> BaseException | None:
        return self._error

    async def wait(self) -> None:
        await self._done.wait()

    async def run(self, fn: Callable[[], Awaitable[None]], what: str, report: bool) -> None:
        try:
            with self.scope:
                await fn()
        except Exception as exc:
            self._error = exc
            if report:
                log.error("%s failed", what, exc_info=exc)
        finally:
            self._done.set()


class AnyioRuntime:
    anyio = True

    def __init__(self, group: TaskGroup) -> None:
        self.group = group

    def now(self) -> float:
        return anyio.current_time()

    def spawn(
        self, fn: Callable[[], Awaitable[None]], what: str, *, report: bool = True
    ) -> TaskHandle:
        task = _AnyioTask()
        self.group.start_soon(task.run, fn, what, report)
        return task

    def call_later(self, delay: float, fn: Callable[[], None]) -> Cancellable:
        async def fire() -> None:
            await anyio.sleep(delay)
            fn()

        return self.spawn(fire, "timer")  # a task handle is a Cancellable

    def event(self) -> EventLike:
        return anyio.Event()

    async def sleep(self, delay: float) -> None:
        await anyio.sleep(delay)

    def timeout(self, delay: float) -> AbstractAsyncContextManager[object]:
        return _fail_after(delay)


@contextlib.asynccontextmanager
async def _fail_after(delay: float) -> AsyncIterator[None]:
    with anyio.fail_after(delay):
        yield

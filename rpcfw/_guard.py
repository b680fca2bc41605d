"""CallGuard: wakes every task working on one call when the call must end early.

The transport calls ``guard.cancel(error)`` (through ``Stream.watcher``) when the stream is
reset or the connection is lost; deadline timers and server drain do the same. Tasks inside
``with guard:`` are cancelled and see ``error`` raised instead of ``CancelledError``.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["CallGuard"]


class CallGuard:
    __slots__ = ("_cancelled", "_tasks", "_timer", "error")

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()
        self._cancelled: set[asyncio.Task[object]] = set()  # tasks this guard cancelled
        self.error: BaseException | None = None
        self._timer: asyncio.TimerHandle | None = None

    def __enter__(self) -> None:
        if self.error is not None:
            raise self.error
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("rpcfw calls must run inside an asyncio task")
        self._tasks.add(task)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.discard(task)
        error = self.error
        if error is None or exc is None or exc is error:
            return
        if isinstance(exc, asyncio.CancelledError):
            if task is None or task not in self._cancelled:
                return  # somebody else cancelled the caller: let it propagate
            self._cancelled.discard(task)
            if task.uncancel() > 0:
                return  # the caller was also cancelled from outside: that wins
        raise error from None

    def cancel(self, error: BaseException) -> None:
        """End the call with ``error``; the first error wins."""
        if self.error is not None:
            return
        self.error = error
        for task in self._tasks:
            self._cancelled.add(task)
            task.cancel()

    def set_deadline(
        self, loop: asyncio.AbstractEventLoop, when: float, error: BaseException
    ) -> None:
        """Cancel with ``error`` at loop time ``when``."""
        self._timer = loop.call_at(when, self.cancel, error)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

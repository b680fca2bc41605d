"""CallGuard: wakes every task working on one call when the call must end early.

The transport calls ``guard.cancel(error)`` (through ``Stream.watcher``) when the stream is
reset or the connection is lost; deadline timers and server drain do the same. Tasks inside
``with guard:`` are cancelled and see ``error`` raised instead of ``CancelledError``.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType

import anyio

__all__ = ["AnyioCallGuard", "CallGuard", "Guard"]


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

    def set_deadline(self, when: float, error: BaseException) -> None:
        """Cancel with ``error`` at event-loop time ``when`` (replaces an earlier deadline)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(when, self.cancel, error)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class AnyioCallGuard:
    """``CallGuard`` for any anyio backend (trio too), on cancel scopes: ``with guard:`` opens
    one whose deadline is the call's; ``cancel(error)`` cancels the open scopes. Several tasks
    may be inside at once (a bidi call's reader and writer), each in its own scope."""

    __slots__ = ("_deadline", "_deadline_error", "_scopes", "error")

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self._scopes: dict[int, list[anyio.CancelScope]] = {}  # by task, innermost last
        self._deadline = math.inf
        self._deadline_error: BaseException | None = None

    def __enter__(self) -> None:
        if self.error is not None:
            raise self.error
        scope = anyio.CancelScope(deadline=self._deadline)
        scope.__enter__()
        self._scopes.setdefault(anyio.get_current_task().id, []).append(scope)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = anyio.get_current_task().id
        scopes = self._scopes[task]
        scope = scopes.pop()
        if not scopes:
            del self._scopes[task]
        if scope.__exit__(exc_type, exc, tb) and exc is not None:
            # the scope caught a cancellation it caused: the guard's own (deadline or cancel)
            if self.error is None:
                self.error = self._deadline_error
            if self.error is not None:
                raise self.error from None

    def _open_scopes(self) -> list[anyio.CancelScope]:
        return [scope for scopes in self._scopes.values() for scope in scopes]

    def cancel(self, error: BaseException) -> None:
        """End the call with ``error``; the first error wins."""
        if self.error is not None:
            return
        self.error = error
        for scope in self._open_scopes():
            scope.cancel()

    def set_deadline(self, when: float, error: BaseException) -> None:
        """Cancel with ``error`` at ``anyio.current_time()`` ``when``."""
        self._deadline = when
        self._deadline_error = error
        for scope in self._open_scopes():
            scope.deadline = when

    def close(self) -> None:
        pass


#: what the server's dispatch needs of a guard (either kind)
Guard = CallGuard | AnyioCallGuard

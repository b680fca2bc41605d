"""Deadline propagation: a server handler's deadline caps the calls it makes (contextvars)."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

__all__ = ["current_deadline", "effective_deadline"]

#: Absolute deadline (event-loop time) of the call this task is serving, if any.
current_deadline: ContextVar[float | None] = ContextVar("rpcfw_deadline", default=None)


def effective_deadline(timeout: float | None) -> float | None:
    """The earlier of ``now + timeout`` and the inherited deadline (loop time)."""
    inherited = current_deadline.get()
    if timeout is None:
        return inherited
    own = asyncio.get_running_loop().time() + timeout
    return own if inherited is None else min(own, inherited)

"""Deadline propagation: a server handler's deadline caps the calls it makes (contextvars)."""

from __future__ import annotations

from contextvars import ContextVar

from ._clock import now

__all__ = ["current_deadline", "effective_deadline"]

#: Absolute deadline (the backend's clock, ``_clock.now``) of the call this task is serving, if any.
current_deadline: ContextVar[float | None] = ContextVar("rpcfw_deadline", default=None)


def effective_deadline(timeout: float | None) -> float | None:
    """The earlier of ``now + timeout`` and the inherited deadline (backend clock)."""
    inherited = current_deadline.get()
    if timeout is None:
        return inherited
    own = now() + timeout
    return own if inherited is None else min(own, inherited)

"""The running backend's clock, which deadlines are measured with: the asyncio loop's time,
or anyio's (trio's) when no asyncio loop runs; and ``Cancellable``, what a timer on it
returns."""

from __future__ import annotations

import asyncio
from typing import Protocol

import anyio

__all__ = ["Cancellable", "now"]


def now() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:  # not on asyncio: trio through anyio
        return anyio.current_time()


class Cancellable(Protocol):
    """A handle whose ``cancel()`` stops what it stands for (a timer, a scheduled callback)."""

    def cancel(self) -> None:
        """Stop it; calling it again, or after it ran, does nothing."""

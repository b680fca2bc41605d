"""The running backend's clock, which deadlines are measured with: the asyncio loop's time,
or anyio's (trio's) when no asyncio loop runs."""

from __future__ import annotations

import asyncio

import anyio

__all__ = ["now"]


def now() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:  # not on asyncio: trio through anyio
        return anyio.current_time()

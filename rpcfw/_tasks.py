"""Ending a task you own without swallowing a cancellation aimed at yourself."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[Any], log: logging.Logger, what: str) -> None:
    """Cancel ``task`` and wait until it has ended; log its failure (other than the
    cancellation) as ``what``. ``asyncio.wait`` never raises the task's CancelledError, so a
    cancellation of the caller while it waits still propagates, and only that one."""
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("%s failed", what, exc_info=exc)

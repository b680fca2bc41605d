"""Progress lines on stderr, stamped with the seconds since the benchmark started."""

from __future__ import annotations

import sys
import time

__all__ = ["log"]

_STARTED = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {msg}", file=sys.stderr, flush=True)

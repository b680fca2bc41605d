"""A server process's CPU time and memory, read from /proc (Linux only), and waiting until it
has gone quiet."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from typing import Any

__all__ = ["Monitor", "cpu_seconds", "reset_peak", "status_mib", "wait_until_quiet"]

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15)


def status_mib(pid: int, key: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (``echo 5 > clear_refs``, Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


class Monitor:
    """CPU and RSS of one process over one phase, from ``begin()`` to ``end()``.
    A thread samples RSS every ``interval`` seconds for the peak (VmHWM, reset at ``begin()``,
    catches what falls between samples). As a context manager it calls ``end()`` on exit."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hwm_reset = False
        self.cpu0 = 0.0
        self.rss_before = 0.0
        self.peak = 0.0
        self.samples: list[tuple[float, float]] = []  # (seconds since begin, RSS MiB)
        self.t0 = 0.0

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()  # stops the sampler however the phase ended (a second end() is harmless)

    def alive(self) -> bool:
        return os.path.exists(f"/proc/{self.pid}/stat")

    def begin(self) -> None:
        self._hwm_reset = reset_peak(self.pid)
        self.t0 = time.monotonic()
        self.rss_before = self.peak = status_mib(self.pid)
        self.cpu0 = cpu_seconds(self.pid)
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        next_log = 0.0
        while not self._stop.wait(self.interval):
            try:
                rss = status_mib(self.pid)
            except (OSError, KeyError):
                return
            self.peak = max(self.peak, rss)
            now = time.monotonic() - self.t0
            if now >= next_log:  # a coarse trace for the JSON (every 0.5 s)
                self.samples.append((round(now, 2), round(rss, 1)))
                next_log = now + 0.5

    def rss_now(self) -> float:
        return status_mib(self.pid)

    def end(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        out: dict[str, Any] = {"seconds": round(time.monotonic() - self.t0, 2)}
        try:
            out["cpu_s"] = round(cpu_seconds(self.pid) - self.cpu0, 3)
            rss = status_mib(self.pid)
            peak = self.peak
            if self._hwm_reset:
                with contextlib.suppress(KeyError):
                    peak = max(peak, status_mib(self.pid, "VmHWM"))
            out.update(
                rss_before=round(self.rss_before, 1),
                rss_peak=round(peak, 1),
                rss_after=round(rss, 1),
            )
        except OSError:
            out["error"] = "server process is gone"
        out["rss_trace"] = self.samples
        return out


async def wait_until_quiet(mon: Monitor, limit: float = 20.0, window: float = 0.5) -> float:
    """Wait until the server used at most one clock tick of CPU in ``window`` seconds (it has
    worked off what the attack left behind), at most ``limit`` seconds; returns the seconds
    waited."""
    tick = 1.0 / _TICK
    start = time.monotonic()
    history: list[tuple[float, float]] = []
    while time.monotonic() - start < limit:
        try:
            history.append((time.monotonic(), cpu_seconds(mon.pid)))
        except OSError:
            break
        old = [c for t, c in history if history[-1][0] - t >= window]
        if old and history[-1][1] - old[-1] <= tick + 1e-9:
            break
        await asyncio.sleep(0.1)
    return round(time.monotonic() - start, 2)

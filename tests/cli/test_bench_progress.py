"""The progress line of ``rpcfw bench``: what it says for given counts (pure), that it is drawn
from its own task at most four times a second and cleared when cancelled, that stderr gets
none when it is not a terminal, and (end to end, stderr a pseudo-terminal) that it shows while
the report still goes to stdout, Ctrl-C included."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import threading
import time

import pytest

import rpcfw.bench.progress as progress_module
from rpcfw.bench.progress import INTERVAL, ProgressLine, ProgressMeter, ProgressSample

from ..conftest import ROOT
from .conftest import LIVENESS, ThreadServer, rpcfw_command, run

UNARY = "echo.v1.Echo/Unary"


# -- what the line says ----------------------------------------------------------------------
def test_a_timed_run_shows_elapsed_of_duration_calls_rate_and_errors() -> None:
    view = ProgressMeter(10.0, None).view(ProgressSample(2.5, 1000, 0))
    assert (view.stage, view.completed, view.total) == ("bench", 2.5, 10.0)
    assert view.position == "2.5s/10s  1,000 calls"
    assert (view.rate, view.errors, view.failing) == ("400 calls/s", "0 errors", False)


def test_a_run_of_n_calls_shows_calls_done_of_total() -> None:
    view = ProgressMeter(600.0, 5000).view(ProgressSample(1.0, 1200, 3))
    assert (view.completed, view.total) == (1200.0, 5000.0)
    assert view.position == "1,200/5,000 calls  1.0s"
    assert (view.rate, view.errors, view.failing) == ("1,200 calls/s", "3 errors", True)
    assert ProgressMeter(600.0, 10).view(ProgressSample(1.0, 1, 1)).errors == "1 error"


def test_the_bar_stops_at_its_end() -> None:
    assert ProgressMeter(600.0, 100).view(ProgressSample(9.0, 120, 0)).completed == 100.0
    late = ProgressMeter(1.0, None).view(ProgressSample(1.4, 10, 0))  # calls in flight finish
    assert (late.completed, late.position) == (1.0, "1.4s/1s  10 calls")


def test_the_rate_is_the_current_one_not_the_average() -> None:
    meter = ProgressMeter(10.0, None, window=1.0)
    done = 0
    rates = []
    for step in range(1, 9):  # 1000 calls/s for a second, then 100 calls/s
        done += 250 if step <= 4 else 25
        rates.append(meter.view(ProgressSample(step * 0.25, done, 0)).rate)
    assert rates[0] == rates[3] == "1,000 calls/s"
    assert rates[-1] == "100 calls/s"  # the average would be 550


def test_no_time_yet_means_no_rate() -> None:
    assert ProgressMeter(10.0, None).view(ProgressSample(0.0, 0, 0)).rate == "0 calls/s"


def test_warm_up_is_its_own_stage() -> None:
    meter = ProgressMeter(10.0, None)
    warm = meter.view(ProgressSample(0.5, 40, warmup=True))
    assert (warm.stage, warm.total, warm.position) == ("warm-up", None, "0.5s  40 calls")
    measured = meter.view(ProgressSample(0.25, 25, 0))  # clock and counts start again
    assert (measured.stage, measured.rate) == ("bench", "100 calls/s")


# -- how it is drawn -------------------------------------------------------------------------
class FakeTerminal(io.StringIO):
    """A stream rich takes for a terminal; ``drawn`` is set once a rate was written."""

    def __init__(self) -> None:
        super().__init__()
        self.drawn = asyncio.Event()

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if "calls/s" in text:
            self.drawn.set()
        return super().write(text)


async def test_the_line_is_drawn_from_its_task_and_cleared_when_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERM", "xterm")
    stream = FakeTerminal()
    threads = threading.active_count()
    line = ProgressLine(stream)
    task = asyncio.create_task(
        line.run(lambda: ProgressSample(1.0, 500, 2), ProgressMeter(10.0, None), 0.01)
    )
    async with asyncio.timeout(LIVENESS):
        await stream.drawn.wait()
    assert threading.active_count() == threads  # no refresh thread: this task draws
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # the cancellation is not swallowed
    text = stream.getvalue()
    assert "1.0s/10s  500 calls  500 calls/s  \x1b[31m2 errors" in text  # errors in red
    assert text.startswith("\x1b[?25lbench ")  # the first view at once
    assert text.endswith("\x1b[2K") and "\x1b[?25h" in text  # line erased, cursor shown


async def test_at_most_four_updates_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every wait between two samples is INTERVAL (>= 0.25 s), and the line samples once per
    wait (plus the first view at once): at most four updates a second, on any machine."""
    monkeypatch.setenv("TERM", "xterm")
    assert INTERVAL >= 0.25
    sampled: list[int] = []
    waits: list[float] = []
    three_waits = asyncio.Event()
    real_sleep = asyncio.sleep

    async def recorded_sleep(delay: float) -> None:  # the line's clock, without the time
        waits.append(delay)
        if len(waits) == 3:
            three_waits.set()
            await asyncio.get_running_loop().create_future()  # parked until cancelled
        await real_sleep(0)

    def sample() -> ProgressSample:
        sampled.append(len(waits))
        return ProgressSample(0.0, 0, 0)

    monkeypatch.setattr(progress_module.asyncio, "sleep", recorded_sleep)
    line = ProgressLine(FakeTerminal())
    task = asyncio.create_task(line.run(sample, ProgressMeter(10.0, None)))
    async with asyncio.timeout(LIVENESS):
        await three_waits.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert waits == [INTERVAL] * 3
    assert sampled == [0, 1, 2]  # one sample at once, then one after each completed wait


# -- end to end ------------------------------------------------------------------------------
def test_no_progress_when_stderr_is_not_a_terminal(
    cli_env: dict[str, str], echo_server: ThreadServer
) -> None:
    result = run(
        cli_env, "bench", echo_server.address, UNARY, "-z", "600ms", "-c", "2", "-f", "json"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout)["ok"] > 0


class TerminalReader:
    """The bytes a child writes to a pseudo-terminal, read by a thread (so it never blocks)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = bytearray()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            self.data += chunk

    def wait_for(self, text: bytes) -> None:
        deadline = time.monotonic() + LIVENESS
        while text not in self.data:
            assert time.monotonic() < deadline, f"{text!r} never came: {bytes(self.data)!r}"
            time.sleep(0.02)

    def text(self) -> str:
        self._thread.join(LIVENESS)
        return self.data.decode(errors="replace")


def bench_on_a_terminal(
    env: dict[str, str], address: str, *args: str, interrupt: bool = False
) -> tuple[int, str, str]:
    """Run rpcfw bench with stderr a pseudo-terminal: (exit code, stdout, terminal output)."""
    primary, secondary = os.openpty()
    try:
        with subprocess.Popen(
            [rpcfw_command(), "bench", address, UNARY, *args, "-f", "json"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=secondary, text=True,
            env={**env, "TERM": "xterm"}, cwd=ROOT,
        ) as bench:  # fmt: skip
            os.close(secondary)
            secondary = -1
            terminal = TerminalReader(primary)
            if interrupt:
                terminal.wait_for(b"calls/s")
                bench.send_signal(signal.SIGINT)
            stdout, _ = bench.communicate(timeout=LIVENESS)
            return bench.returncode, stdout, terminal.text()
    finally:
        if secondary >= 0:
            os.close(secondary)
        os.close(primary)


def test_progress_on_a_terminal_and_the_report_on_stdout(
    cli_env: dict[str, str], echo_server: ThreadServer
) -> None:
    code, stdout, terminal = bench_on_a_terminal(
        cli_env, echo_server.address, "-z", "700ms", "-c", "2"
    )
    assert code == 0, terminal
    assert json.loads(stdout)["ok"] > 0  # the report alone
    assert "calls/s" in terminal and "errors" in terminal
    assert "s/0.7s" in terminal  # elapsed of the 700 ms
    assert "\x1b[2K" in terminal  # the line erased at the end


def test_ctrl_c_with_the_progress_line_still_prints_the_partial_report(
    cli_env: dict[str, str], echo_server: ThreadServer
) -> None:
    code, stdout, terminal = bench_on_a_terminal(
        cli_env, echo_server.address, "-z", "10m", "-c", "1", interrupt=True
    )
    assert code == 130, terminal
    report = json.loads(stdout)
    assert report["stopped_early"].startswith("interrupted")
    assert "Traceback" not in terminal

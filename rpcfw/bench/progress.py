"""The progress line ``rpcfw bench`` draws on stderr while it runs (only when stderr is a
terminal): :class:`ProgressMeter` decides what the line says for given counts (pure), and
:class:`ProgressLine` draws it with rich from a task the run owns."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

__all__ = ["INTERVAL", "ProgressLine", "ProgressMeter", "ProgressSample", "ProgressView"]

#: seconds between two updates of the line: at most four a second
INTERVAL = 0.25


@dataclass(frozen=True, slots=True)
class ProgressSample:
    """The run at one moment: ``elapsed`` seconds and ``done`` calls (OK or not; ``errors`` of
    them failed) of the measured part, or of the warm-up while ``warmup`` (calls started)."""

    elapsed: float
    done: int
    errors: int = 0
    warmup: bool = False


@dataclass(frozen=True, slots=True)
class ProgressView:
    """What the line shows: the ``stage``, a bar ``completed`` of ``total`` (None: a pulse, no
    end known), where the run is (time and calls), the current rate and the errors so far
    (``failing``: any)."""

    stage: str
    completed: float
    total: float | None
    position: str
    rate: str
    errors: str
    failing: bool


class ProgressMeter:
    """Turns samples of a run of ``duration`` seconds or ``total`` calls into views. The rate
    is the current one: calls per second over about the last ``window`` seconds."""

    def __init__(self, duration: float, total: int | None, window: float = 1.0) -> None:
        self.duration = duration
        self.total = total
        self.window = window
        self._history: deque[ProgressSample] = deque()

    def rate(self, sample: ProgressSample) -> float:
        """Calls per second from the newest earlier sample at least ``window`` seconds older
        (or from the start of the stage) to ``sample``; remembers ``sample``."""
        history = self._history
        if not history or history[-1].warmup != sample.warmup:
            history.clear()  # a new stage: its clock and counts start at zero
            history.append(ProgressSample(0.0, 0, 0, sample.warmup))
        history.append(sample)
        while len(history) > 2 and history[1].elapsed <= sample.elapsed - self.window:
            history.popleft()
        since = history[0]
        seconds = sample.elapsed - since.elapsed
        return (sample.done - since.done) / seconds if seconds > 0 else 0.0

    def view(self, sample: ProgressSample) -> ProgressView:
        """What the line shows for ``sample`` (call once per sample, in order)."""
        rate = f"{self.rate(sample):,.0f} calls/s"
        errors = f"{sample.errors:,} error{'' if sample.errors == 1 else 's'}"
        failing = sample.errors > 0
        elapsed = max(sample.elapsed, 0.0)
        if sample.warmup:
            position = f"{elapsed:.1f}s  {sample.done:,} calls"
            return ProgressView("warm-up", 0.0, None, position, rate, errors, failing)
        if self.total is not None:
            position = f"{sample.done:,}/{self.total:,} calls  {elapsed:.1f}s"
            done = float(min(sample.done, self.total))
            return ProgressView("bench", done, float(self.total), position, rate, errors, failing)
        position = f"{elapsed:.1f}s/{self.duration:g}s  {sample.done:,} calls"
        completed = min(elapsed, self.duration)
        return ProgressView("bench", completed, self.duration, position, rate, errors, failing)


class ProgressLine:
    """The line on the terminal ``stream``, drawn with rich by the task that calls
    :meth:`run` (rich starts no refresh thread). Build it before the run starts: importing
    and setting up rich then costs the measured part nothing."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[text]}"),
            console=Console(file=stream),
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task = self._progress.add_task("", total=None, text="")

    def show(self, view: ProgressView) -> None:
        """Set what the line shows (drawn at the next refresh); errors in red."""
        errors = f"[red]{view.errors}[/red]" if view.failing else view.errors
        self._progress.update(
            self._task,
            description=view.stage,
            completed=view.completed,
            total=view.total,
            text=f"{view.position}  {view.rate}  {errors}",
        )

    async def run(
        self,
        sample: Callable[[], ProgressSample],
        meter: ProgressMeter,
        interval: float = INTERVAL,
    ) -> None:
        """Draw the view of ``sample()`` now and every ``interval`` seconds until this task is
        cancelled; then clear the line and let the cancellation propagate."""
        self.show(meter.view(sample()))
        self._progress.start()  # draws the first view
        try:
            while True:
                await asyncio.sleep(interval)
                self.show(meter.view(sample()))
                self._progress.refresh()
        finally:
            self._progress.stop()

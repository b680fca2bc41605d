"""The child processes of the abuse benchmark, seen from the parent: each runs
``benchmarks/abuse.py`` in a role (``--role serve`` or ``--role worker``) pinned to a core and
talks JSON lines over its stdin and stdout; ``RunContext`` hands out the worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from suite_lib.processes import Child

from .plan import CLIENTS, Plan

__all__ = [
    "ChildProcess",
    "RunContext",
    "ServerProcess",
    "job_result",
    "pin_this_process",
    "stop_all",
]

ENTRY_POINT = Path(__file__).resolve().parents[1] / "abuse.py"  # what every child runs


class ChildProcess(Child):
    """``suite_lib.processes.Child`` running ``benchmarks/abuse.py`` in a role, with an
    asyncio-friendly ``event()``."""

    def __init__(self, argv: list[str], core: int, gen_root: str, log_path: Path) -> None:
        super().__init__(argv, core, gen_root, log_path, entry=ENTRY_POINT)

    async def event(self, within: float) -> dict[str, Any]:
        """The next JSON line the child prints (TimeoutError after ``within`` seconds)."""
        assert self.proc.stdout is not None
        loop = asyncio.get_running_loop()
        fd = self.proc.stdout.fileno()
        async with asyncio.timeout(within):
            while b"\n" not in self._buf:
                readable = loop.create_future()
                loop.add_reader(fd, lambda f=readable: f.done() or f.set_result(None))
                try:
                    await readable
                finally:
                    loop.remove_reader(fd)
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"child exited ({self.proc.poll()}); {self.tail()}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        result: dict[str, Any] = json.loads(line)
        return result

    async def expect_ready(self, within: float, what: str) -> None:
        """Wait for the worker's "ready" event; RuntimeError naming ``what`` on anything else."""
        event = await self.event(within)
        if event["event"] != "ready":
            raise RuntimeError(f"{what} failed: {event.get('error', event)}")


def job_result(event: dict[str, Any], what: str) -> dict[str, Any]:
    """The result of a worker's "done" event; RuntimeError naming ``what`` if the job failed."""
    if "error" in event:
        raise RuntimeError(f"{what} failed: {event['error']}")
    result: dict[str, Any] = event["result"]
    return result


class ServerProcess:
    """A server of one kind (``echo_server.serve``) in its own process on core 0."""

    count = 0

    def __init__(self, kind: str, tmp: Path) -> None:
        ServerProcess.count += 1
        self.kind = kind
        self.child = ChildProcess(
            ["--role", "serve", "--kind", kind],
            0,
            str(tmp),
            tmp / f"server-{ServerProcess.count}-{kind}.log",
        )

    async def start(self) -> None:
        hello = await self.child.event(60)
        self.port: int = hello["port"]
        self.pid: int = hello["pid"]

    async def stats(self) -> dict[str, Any]:
        self.child.send({"cmd": "stats"})
        return await self.child.event(15)

    def exit_code(self) -> int | None:
        return self.child.proc.poll()

    def stop(self) -> None:
        self.child.stop(5)


def stop_all(procs: Sequence[ChildProcess], wait: float) -> None:
    """Close every stdin at once (their cue to exit), then wait ``wait`` seconds in all
    before killing those still running."""
    for proc in procs:
        with contextlib.suppress(Exception):
            assert proc.proc.stdin is not None
            proc.proc.stdin.close()
    deadline = time.monotonic() + wait
    for proc in procs:
        proc.stop(max(0.05, deadline - time.monotonic()))


def pin_this_process(core: int) -> None:
    cpus = os.cpu_count() or 1
    if cpus > 1:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {core % cpus})


@dataclasses.dataclass
class RunContext:
    """What every scenario gets: the plan, the temporary directory (generated code, child
    logs), the ``--client`` choice, and the worker processes (on core 1)."""

    plan: Plan
    tmp: Path
    client: str
    _shared_worker: ChildProcess | None = None
    _workers_made: int = 0

    def stack(self, server: str) -> str:
        """The client stack used against ``server``."""
        return CLIENTS[self.client][server]

    def new_worker(self, name: str) -> ChildProcess:
        self._workers_made += 1
        return ChildProcess(
            ["--role", "worker"],
            1,
            str(self.tmp),
            self.tmp / f"worker-{self._workers_made}-{name}.log",
        )

    def shared_worker(self) -> ChildProcess:
        """The worker kept from job to job (a new one if there is none or it died)."""
        if self._shared_worker is None or self._shared_worker.proc.poll() is not None:
            self._shared_worker = self.new_worker("attacker")
        return self._shared_worker

    def reset_shared_worker(self) -> None:
        """Stop the shared worker (its state is unknown after a failed scenario)."""
        if self._shared_worker is not None:
            self._shared_worker.stop(1)
            self._shared_worker = None

"""Parent side: the child processes. ``Child`` runs ``benchmarks/suite.py`` in a child role,
pinned to a core, and talks JSON lines with it; ``start_server``, ``start_client`` and
``run_job`` drive the roles; ``generate`` writes the echo service's code for both message
backends; ``die_with_parent`` and ``on_signal`` make sure no child outlives the run (other
benchmarks use them too)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

from .model import ROOT, Cell, Mode

__all__ = [
    "Child",
    "ENTRY_POINT",
    "die_with_parent",
    "generate",
    "on_signal",
    "pinned",
    "run_job",
    "start_client",
    "start_server",
]

ENTRY_POINT = Path(__file__).resolve().parents[1] / "suite.py"  # what every child runs


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when its parent dies (outlier.py and
    discovery_faults.py use it for their server processes too)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def pinned(core: int) -> list[str]:
    cpus = os.cpu_count() or 1
    return ["taskset", "-c", str(core % cpus)] if cpus > 1 else []


class Child:
    """A child process talking JSON lines over pipes; every read has a timeout."""

    live: ClassVar[list[Child]] = []

    def __init__(
        self, argv: list[str], core: int, gen_root: str, log: Path, entry: Path = ENTRY_POINT
    ) -> None:
        """Start ``python ENTRY ARGV`` pinned to ``core``, ``gen_root`` and the repository on
        its path, its stderr into ``log``."""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([gen_root, str(ROOT)]))
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [*pinned(core), sys.executable, str(entry), *argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
                preexec_fn=die_with_parent,
            )
        self._buf = b""
        Child.live.append(self)

    def readline(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer in {timeout:.0f}s; {self.tail()}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"child exited ({self.proc.poll()}); {self.tail()}")
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def send(self, obj: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")
        self.proc.stdin.flush()

    def tail(self) -> str:
        try:
            return "stderr: " + self.log.read_text(errors="replace")[-800:].strip()
        except OSError:
            return ""

    def stop(self, wait: float = 5.0) -> None:
        """Close stdin (the child's cue to exit), then kill it if it lingers."""
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self in Child.live:
            Child.live.remove(self)

    @classmethod
    def kill_all(cls) -> None:
        for child in list(cls.live):
            with contextlib.suppress(Exception):
                child.proc.kill()
                child.proc.wait(5)
        cls.live.clear()


def on_signal(signum: int, frame: Any) -> None:
    Child.kill_all()
    sys.exit(128 + signum)


def generate(tmp: Path) -> None:
    from rpcfw_codegen import Backend, generate_tree

    proto = ROOT / "proto"
    generate_tree([proto], tmp / "bench_pb", includes=[proto], backend=Backend.PROTOBUF)
    generate_tree([proto], tmp / "bench_bp", includes=[proto], backend=Backend.BETTERPROTO2)


def start_server(
    stack: str,
    loop: str,
    tmp: Path,
    profile_out: str | None = None,
    option: str | None = None,
    certs: Path | None = None,
) -> Child:
    argv = ["--serve", stack, "--loop", loop]
    if profile_out:
        argv += ["--cprofile-out", profile_out]
    if option:
        argv += ["--option", option, *(("--certs", str(certs)) if certs else ())]
    name = f"{stack}-{option}" if option else stack
    child = Child(argv, 0, str(tmp), tmp / f"server-{name}-{loop}.log")
    child.port = int(child.readline(60))  # type: ignore[attr-defined]
    return child


def start_client(stack: str, loop: str, tmp: Path) -> Child:
    child = Child(
        ["--client", stack, "--loop", loop], 1, str(tmp), tmp / f"client-{stack}-{loop}.log"
    )
    if child.readline(60) != "ready":
        raise RuntimeError(f"client {stack} did not start; {child.tail()}")
    return child


def run_job(
    client: Child,
    port: int,
    cell: Cell,
    mode: Mode,
    option: str | None = None,
    certs: Path | None = None,
) -> dict[str, Any]:
    job = {"port": port, "cell": asdict(cell), "duration": mode.duration, "warmup": mode.warmup}
    if option:
        job.update(option=option, certs=str(certs) if certs else None)
    client.send(job)
    result: dict[str, Any] = json.loads(client.readline(mode.duration + mode.warmup + 60))
    return result

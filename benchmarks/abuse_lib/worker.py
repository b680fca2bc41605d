"""The worker process (``abuse.py --role worker``): runs jobs read from stdin, one JSON object
a line, answering on stdout: "ready" (set up; then it waits for the parent's "go"), "progress"
(the soak) and "done" with the job's result or error. A job is a raw attack, a storm client or
the soak client."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from . import raw_attacks
from .soak import soak_client
from .storm import storm_client

__all__ = ["JOBS", "emit", "run_jobs", "wait_for_go"]


def emit(**obj: Any) -> None:
    """One JSON line to the parent."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def wait_for_go() -> None:
    """Tell the parent we are set, and wait for its "go" (exit if it closed our stdin)."""
    emit(event="ready")
    if not sys.stdin.readline():
        os._exit(0)


def _progress(done: int) -> None:
    emit(event="progress", done=done)


# job kind -> what runs it (in this process, blocking)
JOBS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "rapid-reset": lambda job: raw_attacks.rapid_reset(job["port"], job["pairs"], wait_for_go),
    "steady-reset": lambda job: raw_attacks.steady_reset(
        job["port"], job["rate"], job["seconds"], wait_for_go
    ),
    "settings-flood": lambda job: raw_attacks.settings_flood(
        job["port"], job["frames"], wait_for_go
    ),
    "ping-flood": lambda job: raw_attacks.ping_flood(job["port"], job["pings"], wait_for_go),
    "big-metadata": lambda job: raw_attacks.big_metadata(job["port"], job["sizes"], wait_for_go),
    "cancel-storm": lambda job: asyncio.run(storm_client(job, wait_for_go)),
    "soak": lambda job: asyncio.run(soak_client(job, wait_for_go, _progress)),
}


def run_jobs() -> None:
    """Run jobs read from stdin until it closes: ready -> (go) -> done."""
    while line := sys.stdin.readline():
        job = json.loads(line)
        kind = job["kind"]
        try:
            if kind not in JOBS:
                raise ValueError(f"unknown job {kind!r}")
            result = JOBS[kind](job)
        except Exception as exc:
            traceback.print_exc()
            emit(event="done", error=f"{type(exc).__name__}: {exc}"[:400])
        else:
            emit(event="done", result=result)

"""Hung-server benchmark (issue 11): what a round_robin channel's callers see when one of three
servers hangs (SIGSTOP: process alive, socket open, no answers), with gRFC A50 outlier
detection off (rpcfw before it: only consecutive connection failures eject) and on (defaults).

    python benchmarks/outlier.py                        # both modes, about 80 s
    python benchmarks/outlier.py --modes on --hang 15 --workers 16 --delay-ms 20

Setup (127.0.0.1): three Echo servers, each in its own process
(``python -m tests.integration.echo_server_main``), one ``rpcfw.Channel("static:///...",
balancer=round_robin)`` in this process with ``--workers`` tasks calling Unary in a closed loop,
``--deadline`` (1 s) per call and ``--delay-ms`` of server time per call. After ``--steady`` s
of load server p2 is SIGSTOPped for ``--hang`` s, then SIGCONTed; ``--after`` s more load.
Fresh servers and channel for each mode. Recorded: every call (end time, outcome: the answering
server or the status), the balancer's outlier log records (ejections, re-admissions).

Report: ``benchmarks/results/<date>-outlier.md`` and ``.json`` (the markdown is printed too).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import dataclasses
import datetime as dt
import functools
import importlib
import json
import logging
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.integration.echo_server_main
    sys.path.insert(1, str(ROOT))

from suite_lib.processes import die_with_parent  # noqa: E402

import rpcfw  # noqa: E402
from rpcfw.balancer import RoundRobinBalancer  # noqa: E402
from tests.echo_service import wait_until  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MODES = {
    "off": functools.partial(RoundRobinBalancer, outlier_detection=None),
    "on": RoundRobinBalancer,  # rpcfw's defaults
}
_PIDS: set[int] = set()


@atexit.register
def _kill_leftovers() -> None:
    for pid in list(_PIDS):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@dataclasses.dataclass(frozen=True)
class Config:
    workers: int = 16
    deadline: float = 1.0
    delay_ms: int = 20
    steady: float = 5.0
    hang: float = 15.0
    after: float = 15.0


class LogCapture(logging.Handler):
    def __init__(self, origin: float) -> None:
        super().__init__(logging.INFO)
        self.origin = origin
        self.records: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((time.monotonic() - self.origin, record.getMessage()))


async def start_server(gen_root: Path, name: str) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.echo_server_main",
        str(gen_root), "protobuf", name, "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        stdin=asyncio.subprocess.DEVNULL, cwd=ROOT, preexec_fn=die_with_parent,
    )  # fmt: skip
    _PIDS.add(proc.pid)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if not line.startswith(b"PORT "):
        raise RuntimeError(f"server {name} said {line!r}")
    return proc, int(line.split()[1])


async def worker(
    mod: ModuleType, stub: Any, cfg: Config, calls: list[tuple[float, str]], stop: asyncio.Event
) -> None:
    request = mod.EchoRequest(delay_ms=cfg.delay_ms)
    while not stop.is_set():
        try:
            reply = await stub.unary(request, timeout=cfg.deadline)
            calls.append((time.monotonic(), reply.server_id))
        except rpcfw.RpcError as exc:
            calls.append((time.monotonic(), exc.status.name))


async def run_mode(mode: str, mod: ModuleType, gen_root: Path, cfg: Config) -> dict[str, Any]:
    names = ["p0", "p1", "p2"]
    procs: list[asyncio.subprocess.Process] = []
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    log = logging.getLogger("rpcfw.balancer")
    capture: LogCapture | None = None
    try:
        ports = []
        for name in names:
            proc, port = await start_server(gen_root, name)
            procs.append(proc)
            ports.append(port)
        hung = procs[2]
        target = "static:///" + ",".join(f"127.0.0.1:{p}" for p in ports)
        async with rpcfw.Channel(target, balancer=MODES[mode]) as channel:
            stub = mod.EchoStub(channel)
            await stub.unary(mod.EchoRequest(), wait_for_ready=True, timeout=10)
            await wait_until(
                lambda: (
                    {s.endpoint.port for s in channel._core.subchannels if s.state.value == "READY"}
                    == set(ports)
                ),
                10,
            )
            calls: list[tuple[float, str]] = []
            start = time.monotonic()
            tasks = [
                asyncio.create_task(worker(mod, stub, cfg, calls, stop)) for _ in range(cfg.workers)
            ]
            await asyncio.sleep(cfg.steady)
            fault = time.monotonic()
            capture = LogCapture(fault)
            log.addHandler(capture)
            log.setLevel(logging.INFO)
            os.kill(hung.pid, signal.SIGSTOP)
            await asyncio.sleep(max(0.0, fault + cfg.hang - time.monotonic()))
            os.kill(hung.pid, signal.SIGCONT)
            resume = time.monotonic()
            await asyncio.sleep(max(0.0, resume + cfg.after - time.monotonic()))
            stop.set()
            end = time.monotonic()
            await asyncio.wait(tasks, timeout=cfg.deadline + 5)
            balancer = channel._core.balancer
            detector = getattr(balancer, "outlier_detector", None)
            counters = (
                None
                if detector is None
                else {k: getattr(detector, k) for k in ("intervals", "ejections", "unejections")}
            )
        return analyze(
            mode, cfg, [(t - fault, what) for t, what in calls], start - fault, resume - fault,
            end - fault, capture.records, counters, ports[2],
        )  # fmt: skip
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        if capture is not None:
            log.removeHandler(capture)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            await proc.wait()
            _PIDS.discard(proc.pid)


def analyze(
    mode: str,
    cfg: Config,
    calls: list[tuple[float, str]],
    start: float,
    resume: float,
    end: float,
    logs: list[tuple[float, str]],
    counters: dict[str, int] | None,
    hung_port: int,
) -> dict[str, Any]:
    """Times are seconds from the SIGSTOP (0); SIGCONT at ``resume``."""
    phases = {"before": (start, 0.0), "during": (0.0, resume), "after": (resume, end)}
    summary = {}
    for phase, (lo, hi) in phases.items():
        outcomes = Counter(what for t, what in calls if lo <= t < hi)
        ok = sum(n for what, n in outcomes.items() if what.startswith("p"))
        summary[phase] = {
            "seconds": round(hi - lo, 2),
            "ok_per_s": round(ok / (hi - lo), 1),
            "deadline_exceeded": outcomes["DEADLINE_EXCEEDED"],
            "other_failures": {
                w: n
                for w, n in outcomes.items()
                if not w.startswith("p") and w != "DEADLINE_EXCEEDED"
            },
            "per_server": {w: n for w, n in sorted(outcomes.items()) if w.startswith("p")},
        }
    marker = f":{hung_port} "
    events = [(round(t, 2), msg) for t, msg in logs if marker in msg + " "]
    ejections = [t for t, msg in events if "ejected" in msg]
    readmitted = [t for t, msg in events if "back in rotation" in msg]
    first_hung_reply = next((t for t, what in calls if t >= resume and what == "p2"), None)
    last_de = max((t for t, what in calls if what == "DEADLINE_EXCEEDED"), default=None)
    timeline = []
    for second in range(math.ceil(start), math.floor(end)):  # whole seconds only
        window = Counter(what for t, what in calls if second <= t < second + 1)
        ok = sum(n for what, n in window.items() if what.startswith("p"))
        timeline.append([second, ok, window["DEADLINE_EXCEEDED"], window["p2"]])
    return {
        "mode": mode,
        "hang_seconds": round(resume, 2),
        "summary": summary,
        "deadline_exceeded_total": sum(1 for _, w in calls if w == "DEADLINE_EXCEEDED"),
        "first_ejection_s": ejections[0] if ejections else None,
        "ejections_s": ejections,
        "readmissions_s": readmitted,
        "first_reply_from_hung_after_sigcont_s": (
            None if first_hung_reply is None else round(first_hung_reply - resume, 2)
        ),
        "last_deadline_exceeded_s": None if last_de is None else round(last_de, 2),
        "detector": counters,
        "log": events,
        "per_second": timeline,
    }


def render(data: dict[str, Any]) -> str:
    cfg = data["config"]
    runs = {run["mode"]: run for run in data["runs"]}
    lines = [
        f"# Hung server, outlier detection off vs on ({data['date']})",
        "",
        f"`{data['command']}`",
        "",
        f"Three Echo servers (one process each), one round_robin channel, {cfg['workers']} "
        f"workers in a closed loop, {cfg['deadline']} s deadline, {cfg['delay_ms']} ms of server "
        f"time per call. {cfg['steady']} s of load, then p2 SIGSTOPped for {cfg['hang']} s "
        f"(t = 0), SIGCONTed, {cfg['after']} s more. `off`: `outlier_detection=None` "
        "(consecutive connection-failure ejection only, as before); `on`: the defaults "
        "(`OutlierDetectionConfig()`: 2 s interval, 5 s base ejection, failure percentage > 85 % "
        "over >= 10 calls, >= 2 hosts). Code: " + json.dumps(data["code"]),
        "",
        "| | " + " | ".join(runs) + " |",
        "|---|" + "---|" * len(runs),
    ]

    def row(label: str, fn: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(str(fn(r)) for r in runs.values()) + " |")

    for phase in ("before", "during", "after"):
        row(f"OK calls/s {phase}", lambda r, p=phase: r["summary"][p]["ok_per_s"])
    for phase in ("during", "after"):
        row(f"DEADLINE_EXCEEDED {phase}", lambda r, p=phase: r["summary"][p]["deadline_exceeded"])
    row(
        "other failures",
        lambda r: sum(sum(s["other_failures"].values()) for s in r["summary"].values()),
    )
    row("p2 ejected (s after SIGSTOP)", lambda r: r["first_ejection_s"] or "never")
    row(
        "ejections / re-admissions (s)",
        lambda r: f"{r['ejections_s']} / {r['readmissions_s']}" if r["detector"] else "n/a",
    )
    row("first p2 reply after SIGCONT (s)", lambda r: r["first_reply_from_hung_after_sigcont_s"])
    row("last DEADLINE_EXCEEDED (s)", lambda r: r["last_deadline_exceeded_s"])
    row("calls per server during the hang", lambda r: r["summary"]["during"]["per_server"])
    lines += ["", "## Per second (t from SIGSTOP; OK / DEADLINE_EXCEEDED / replies from p2)", ""]
    lines.append("| t | " + " | ".join(f"{m} OK | {m} DE | {m} p2" for m in runs) + " |")
    lines.append("|---|" + "---|" * (3 * len(runs)))
    timelines = [dict((row_[0], row_[1:]) for row_ in r["per_second"]) for r in runs.values()]
    for second in sorted(set().union(*timelines)):
        cells = [" | ".join(str(v) for v in t.get(second, ["", "", ""])) for t in timelines]
        lines.append(f"| {second} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def generate(tmp: Path) -> ModuleType:
    from rpcfw_codegen import Backend, generate_tree

    generate_tree(
        [ROOT / "proto"], tmp / "gen_protobuf", includes=[ROOT / "proto"], backend=Backend.PROTOBUF
    )
    sys.path.insert(0, str(tmp))
    return importlib.import_module("gen_protobuf.echo.v1.echo_rpcfw")


async def run_all(modes: Sequence[str], cfg: Config) -> list[dict[str, Any]]:
    gen_root = Path(tempfile.mkdtemp(prefix="rpcfw-outlier-gen-"))
    try:
        mod = generate(gen_root)
        results = []
        for mode in modes:
            print(f"# mode {mode} ...", file=sys.stderr, flush=True)
            results.append(await run_mode(mode, mod, gen_root, cfg))
        return results
    finally:
        shutil.rmtree(gen_root, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--modes", default="off,on", help="comma-separated: off, on")
    for field in dataclasses.fields(Config):
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default
        )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--date", default=dt.date.today().isoformat())
    parser.add_argument("--label", default="outlier", help="results file name suffix")
    args = parser.parse_args(argv)
    cfg = Config(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Config)})
    modes = [m for m in args.modes.split(",") if m]
    if not set(modes) <= set(MODES):
        parser.error(f"unknown mode in {args.modes!r}")
    code = {"rpcfw": str(Path(rpcfw.__file__).parent), "python": sys.version.split()[0]}
    with contextlib.suppress(Exception):
        git = ["git", "-C", str(ROOT)]
        code["git_head"] = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        status = subprocess.run(
            [*git, "status", "--short", "--", "rpcfw"], capture_output=True, text=True
        ).stdout
        code["rpcfw_uncommitted_files"] = str(len(status.splitlines()))
    results = asyncio.run(run_all(modes, cfg))
    argv_used = sys.argv[1:] if argv is None else list(argv)
    data = {
        "date": args.date,
        "command": shlex.join(["python", "benchmarks/outlier.py", *argv_used]),
        "config": dataclasses.asdict(cfg),
        "code": code,
        "runs": results,
    }
    markdown = render(data)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{args.date}-{args.label}"
    Path(f"{stem}.json").write_text(json.dumps(data, indent=1) + "\n")
    Path(f"{stem}.md").write_text(markdown)
    print(markdown)
    print(f"written: {stem}.md, {stem}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Discovery fault benchmark (issue 9): what an ``etcd://`` channel's callers see when etcd is
wiped or hangs.

    python benchmarks/discovery_faults.py all --label before            # both, ~75 s a run
    python benchmarks/discovery_faults.py wipe --label before --runs 2
    python benchmarks/discovery_faults.py hang --hang 20 --after 20 --workers 20

Setup (127.0.0.1 only): one etcd (tests/etcd_server.py's EtcdProcess, fresh data dir per run),
three Echo servers registered in etcd under leases (``etcd_registrar(ttl=--ttl, timeout=0.5)``),
one ``rpcfw.Channel("etcd://.../echo.v1.Echo", balancer="round_robin")`` with ``--workers``
tasks making unary calls in a closed loop (``--call-timeout`` each; after a failed call a worker
waits ``--fail-pause``, by default it only yields). Servers and client share this process's
event loop, except the server the hang scenario kills, which runs as
``python -m tests.integration.echo_server_main`` (its lease TTL is 2 s).

Recorded, relative to the fault: every call (end time, status, answering server), the channel's
subchannels every 50 ms (ports, READY ones, state) with the in-process registrars' leases, the
keys under ``/rpcfw/services/echo.v1.Echo/`` every 100 ms (own client, 0.5 s per attempt; a
failed poll is recorded), and every rpcfw log record at WARNING or above.

Scenarios:

- wipe: after ``--steady`` s of load, etcd is SIGKILLed and restarted with an EMPTY data dir;
  load goes on for ``--after`` s.
- hang: after ``--steady`` s, etcd is SIGSTOPped for ``--hang`` s; at 25% of the hang the
  subprocess server is SIGKILLed, at 40% a new in-process server starts (its registration
  fails, it retries in the background); then SIGCONT and ``--after`` s more load.

Report: ``benchmarks/results/<date>-discovery-faults-<label>.md`` and ``.json`` (the markdown
is printed too). etcd and every server process are killed at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import dataclasses
import datetime as dt
import hashlib
import importlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.etcd_server, tests.echo_service
    sys.path.insert(1, str(ROOT))

from discovery_faults_lib.analysis import (  # noqa: E402
    Timeline,
    analyze_hang,
    analyze_wipe,
    grouped_logs,
    warnings_between,
)
from discovery_faults_lib.record import (  # noqa: E402
    LogCapture,
    Recording,
    channel_sampler,
    clock,
    key_poller,
    load_worker,
)
from discovery_faults_lib.report import render  # noqa: E402
from suite_lib.processes import die_with_parent  # noqa: E402

import rpcfw  # noqa: E402
from rpcfw.registry import LeaseRegistrar, etcd_registrar  # noqa: E402
from tests.echo_service import make_echo_service  # noqa: E402
from tests.etcd_server import EtcdProcess  # noqa: E402

__all__ = ["Config", "main"]

RESULTS = Path(__file__).resolve().parent / "results"
SERVICE = "echo.v1.Echo"
SCENARIOS = ("wipe", "hang")

# Everything started, for the last-resort cleanup at exit (normally closed before).
_ETCDS: list[EtcdProcess] = []
_PIDS: set[int] = set()


def _cleanup_at_exit() -> None:
    for pid in list(_PIDS):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for etcd in _ETCDS:
        with contextlib.suppress(Exception):
            etcd.kill()


atexit.register(_cleanup_at_exit)


@dataclasses.dataclass(frozen=True)
class Config:
    workers: int = 20
    ttl: int = 10
    call_timeout: float = 1.0
    fail_pause: float = 0.0
    steady: float = 3.0
    after: float = 20.0
    hang: float = 20.0
    channel_interval: float = 0.05
    key_interval: float = 0.1


class Env:
    """etcd, the servers and the channel of one scenario run; ``close`` undoes all of it."""

    def __init__(self, mod: ModuleType, gen_root: Path, tmp: Path, cfg: Config) -> None:
        self.mod, self.gen_root, self.tmp, self.cfg = mod, gen_root, tmp, cfg
        self.etcd = EtcdProcess(tmp / "etcd")
        self.servers: dict[str, rpcfw.Server] = {}
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.ports: dict[str, int] = {}
        self.channel: rpcfw.Channel | None = None
        self.stub: Any = None

    async def start_etcd(self) -> None:
        _ETCDS.append(self.etcd)
        await asyncio.to_thread(self.etcd.start)

    async def start_server(self, name: str) -> None:
        registry = etcd_registrar(self.etcd.endpoint, ttl=self.cfg.ttl, timeout=0.5)
        server = rpcfw.Server([make_echo_service(self.mod, name)], registry=registry)
        self.servers[name] = server
        await server.start("127.0.0.1", 0)
        assert server.port is not None
        self.ports[name] = server.port

    async def start_process(self, name: str) -> None:
        log = (self.tmp / f"{name}.log").open("wb")
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.integration.echo_server_main",
                str(self.gen_root), "protobuf", name, "0", self.etcd.endpoint,
                stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL,
                cwd=ROOT, preexec_fn=die_with_parent,
            )  # fmt: skip
        finally:
            log.close()
        _PIDS.add(proc.pid)
        self.procs[name] = proc
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line.startswith(b"PORT "):
            raise RuntimeError(f"server process {name} said {line!r}")
        self.ports[name] = int(line.split()[1])

    def kill_process(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGKILL)

    def registrars(self) -> dict[str, LeaseRegistrar]:
        return {
            name: server.registry
            for name, server in self.servers.items()
            if isinstance(server.registry, LeaseRegistrar)
        }

    async def wait_keys(self, names: Sequence[str], within: float = 15.0) -> None:
        from rpcfw.etcd import Etcd3PyClient
        from rpcfw.registry import service_prefix

        wanted = {f"127.0.0.1:{self.ports[n]}" for n in names}
        prefix = service_prefix("/rpcfw/services", SERVICE)
        async with Etcd3PyClient([self.etcd.endpoint], timeout=1.0) as client:
            async with asyncio.timeout(within):
                while True:
                    snapshot = await client.get_prefix(prefix)
                    if wanted <= {kv.key.rsplit("/", 1)[1] for kv in snapshot.items}:
                        return
                    await asyncio.sleep(0.05)

    async def open_channel(self, within: float = 15.0) -> None:
        self.channel = rpcfw.Channel(
            f"etcd://{self.etcd.endpoint}/{SERVICE}", balancer="round_robin"
        )
        self.stub = self.mod.EchoStub(self.channel)
        await self.stub.unary(self.mod.EchoRequest(), wait_for_ready=True, timeout=within)
        core = self.channel._core
        wanted = set(self.ports.values())
        deadline = clock() + within
        while {s.endpoint.port for s in core.subchannels if s.state.value == "READY"} != wanted:
            if clock() > deadline:
                raise TimeoutError(f"channel not READY to every server within {within} s")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        """Bounded: channel, in-process servers (grace 0.5 s), processes, etcd."""
        if self.etcd.running:
            _signal_etcd(
                self.etcd, signal.SIGCONT
            )  # a hung etcd would only slow the servers' lease revocation
        if self.channel is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.channel.close(), 10)
        if self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.gather(
                        *(s.stop(grace=0.5) for s in self.servers.values()), return_exceptions=True
                    ),
                    10,
                )
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 10)
            _PIDS.discard(proc.pid)
        await asyncio.to_thread(self.etcd.kill)
        with contextlib.suppress(ValueError):
            _ETCDS.remove(self.etcd)


def _signal_etcd(etcd: EtcdProcess, sig: signal.Signals) -> None:
    """SIGSTOP / SIGCONT etcd (``pause``/``resume`` where EtcdProcess has them)."""
    method = getattr(etcd, "pause" if sig is signal.SIGSTOP else "resume", None)
    if method is not None:
        method()
        return
    proc = getattr(etcd, "_proc", None)  # an older EtcdProcess
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)


def code_under_test(note: str) -> dict[str, Any]:
    """Which rpcfw ran: its directory, a hash of its sources, git HEAD and local changes."""
    package = Path(rpcfw.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    info: dict[str, Any] = {
        "rpcfw_dir": str(package),
        "rpcfw_sources_sha256": digest.hexdigest()[:16],
        "note": note,
    }
    if (ROOT / ".git").exists():
        with contextlib.suppress(Exception):
            git = ["git", "-C", str(ROOT)]
            head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True)
            status = subprocess.run(
                [*git, "status", "--short", "--", "rpcfw", "tests"], capture_output=True
            )
            info["git_head"] = head.stdout.decode().strip()
            info["local_changes"] = status.stdout.decode().split("\n")[:-1]
    return info


async def _sleep_until(when: float) -> None:
    await asyncio.sleep(max(0.0, when - clock()))


async def run_scenario(
    kind: str, run: int, mod: ModuleType, gen_root: Path, cfg: Config
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"rpcfw-faults-{kind}-"))
    env = Env(mod, gen_root, tmp, cfg)
    rec = Recording()
    logs = LogCapture()
    try:
        await env.start_etcd()
        if kind == "wipe":
            originals = ["s1", "s2", "s3"]
            for name in originals:
                await env.start_server(name)
        else:
            originals = ["s1", "s2", "p3"]
            await env.start_server("s1")
            await env.start_server("s2")
            await env.start_process("p3")
        now = clock()
        rec.liveness.extend((now, name, True) for name in originals)
        await env.wait_keys(originals)
        await env.open_channel()
        assert env.channel is not None
        logs.install()
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(
                load_worker(
                    mod,
                    env.stub,
                    rec.calls,
                    stop,
                    call_timeout=cfg.call_timeout,
                    fail_pause=cfg.fail_pause,
                )
            )
            for _ in range(cfg.workers)
        ]
        tasks.append(
            asyncio.create_task(
                channel_sampler(
                    env.channel, env.registrars, rec.channel, stop, cfg.channel_interval
                )
            )
        )
        tasks.append(
            asyncio.create_task(
                key_poller(env.etcd.endpoint, SERVICE, rec.keys, stop, cfg.key_interval)
            )
        )
        load_start = clock()
        try:
            await _sleep_until(load_start + cfg.steady)
            if kind == "wipe":
                fault = rec.event("fault: etcd SIGKILLed, restarting with an empty data dir")
                await asyncio.to_thread(env.etcd.restart, keep_data=False)
                rec.event("etcd healthy again (empty)")
                await _sleep_until(fault + cfg.after)
            else:
                fault = rec.event("fault: etcd SIGSTOPped")
                _signal_etcd(env.etcd, signal.SIGSTOP)
                await _sleep_until(fault + cfg.hang * 0.25)
                env.kill_process("p3")
                rec.liveness.append((rec.event("SIGKILL p3 (subprocess server)"), "p3", False))
                await _sleep_until(fault + cfg.hang * 0.4)
                rec.event("starting n4 (in-process server)")
                await env.start_server("n4")
                rec.liveness.append((rec.event("started n4 (server.start() returned)"), "n4", True))
                await _sleep_until(fault + cfg.hang)
                _signal_etcd(env.etcd, signal.SIGCONT)
                resume = rec.event("etcd SIGCONTed")
                await _sleep_until(resume + cfg.after)
        finally:
            stop.set()
            load_end = clock()
            _, pending = await asyncio.wait(tasks, timeout=cfg.call_timeout + 5)
            for task in pending:
                task.cancel()
            logs.uninstall()
        timeline = Timeline(rec, fault, env.ports, load_start, load_end)
        if kind == "wipe":
            metrics = analyze_wipe(timeline, originals)
        else:
            metrics = analyze_hang(timeline, originals, "p3", "n4", resume - fault)
            metrics["warnings_during_hang"] = warnings_between(
                logs.entries, fault, 0.0, resume - fault
            )
            metrics["warnings_after_resume"] = warnings_between(
                logs.entries, fault, resume - fault, load_end - fault
            )
        return {
            "scenario": kind,
            "run": run,
            "servers": {
                name: {"port": port, "kind": "subprocess" if name in env.procs else "in-process"}
                for name, port in env.ports.items()
            },
            "metrics": metrics,
            "events": [{"t": round(t, 3), "what": what} for t, what in timeline.events],
            "channel_transitions": timeline.channel_transitions(),
            "key_transitions": timeline.key_transitions(),
            "lease_transitions": timeline.lease_transitions(),
            "logs": grouped_logs(logs.entries, fault),
            "per_second": timeline.per_second(),
        }
    finally:
        logs.uninstall()
        await env.close()
        shutil.rmtree(tmp, ignore_errors=True)


def generate(tmp: Path) -> ModuleType:
    from rpcfw_codegen import Backend, generate_tree

    generate_tree(
        [ROOT / "proto"],
        tmp / "gen_protobuf",
        includes=[ROOT / "proto"],
        backend=Backend.PROTOBUF,
    )
    sys.path.insert(0, str(tmp))
    return importlib.import_module("gen_protobuf.echo.v1.echo_rpcfw")


async def run_all(scenarios: Sequence[str], cfg: Config, runs: int) -> list[dict[str, Any]]:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    gen_root = Path(tempfile.mkdtemp(prefix="rpcfw-faults-gen-"))
    try:
        mod = generate(gen_root)
        results = []
        for run in range(1, runs + 1):
            for kind in scenarios:
                print(f"# {kind} run {run} ...", file=sys.stderr, flush=True)
                started = time.monotonic()
                results.append(await run_scenario(kind, run, mod, gen_root, cfg))
                print(
                    f"# {kind} run {run} done in {time.monotonic() - started:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
        return results
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        shutil.rmtree(gen_root, ignore_errors=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument("--label", default="run", help="results file name suffix")
    parser.add_argument("--runs", type=int, default=1, help="runs of each scenario")
    parser.add_argument("--workers", type=int, default=Config.workers)
    parser.add_argument("--ttl", type=int, default=Config.ttl, help="lease TTL (in-process)")
    parser.add_argument("--call-timeout", type=float, default=Config.call_timeout)
    parser.add_argument(
        "--fail-pause",
        type=float,
        default=Config.fail_pause,
        help="seconds a worker waits after a failed call (0: only yields)",
    )
    parser.add_argument("--steady", type=float, default=Config.steady, help="load before fault")
    parser.add_argument("--after", type=float, default=Config.after, help="load after fault")
    parser.add_argument("--hang", type=float, default=Config.hang, help="SIGSTOP duration")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--date", default=dt.date.today().isoformat())
    parser.add_argument("--code-note", default="", help="what code this is (for the report)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = Config(
        workers=args.workers,
        ttl=args.ttl,
        call_timeout=args.call_timeout,
        fail_pause=args.fail_pause,
        steady=args.steady,
        after=args.after,
        hang=args.hang,
    )
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    code = code_under_test(args.code_note)  # before the run: the tree may change meanwhile
    try:
        results = asyncio.run(run_all(scenarios, cfg, args.runs))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: etcd and the servers are stopped, nothing written", file=sys.stderr)
        return 130
    finally:
        _cleanup_at_exit()
    data = {
        "label": args.label,
        "date": args.date,
        "command": shlex.join(
            ["python", "benchmarks/discovery_faults.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "config": dataclasses.asdict(cfg),
        "code": code,
        "runs": results,
    }
    markdown = render(data)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{args.date}-discovery-faults-{args.label}"
    Path(f"{stem}.json").write_text(json.dumps(data, indent=1) + "\n")
    Path(f"{stem}.md").write_text(markdown)
    print(markdown)
    print(f"written: {stem}.md, {stem}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

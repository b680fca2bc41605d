"""Abuse benchmark: attacks an rpcfw server and a grpc.aio (grpcio) server side by side.

    python benchmarks/abuse.py                      # default mode, 2-3 minutes
    python benchmarks/abuse.py --full               # bigger storm and soak, ~10 minutes
    python benchmarks/abuse.py --scale 0.05         # everything 20x smaller (a quick check)
    python benchmarks/abuse.py --only rapid-reset   # one scenario (repeat --only for more)

Scenarios (each against a fresh server process of each kind, rpcfw first):

1. rapid-reset: 25,000 HEADERS + RST_STREAM(CANCEL) pairs as fast as possible, one connection.
2. steady-reset: 6,000 resets/s for 5 s (a connection the server ends is replaced) while a
   normal client makes calls.
3. settings-flood: 50,000 empty SETTINGS frames on one connection (its ACKs are read).
4. ping-flood: up to 50,000 PINGs from a peer that never reads (tiny receive buffer).
5. big-metadata: one request with 100 KB and one with 1 MiB of metadata, each followed by a
   normal request on the same connection (did it survive?).
6. cancel-storm: 4 client processes x 5,000 calls (--full: x 20,000) to a handler that sleeps
   50 ms, each call cancelled after a random 0-5 ms; then 1,000 normal calls with a 10 s deadline.
7. soak: 200,000 unary calls (--full: 1,000,000) over one connection; server RSS every 10%.

Servers run in their own processes pinned to core 0; the attacker, the storm and soak clients
and this process (which makes the normal calls and reads /proc/<pid>/stat and status of the
server) run on core 1. Attacks 1-5 use raw frames (hyperframe + hpack, built before the attack
starts, written in 256 KiB chunks); normal calls, the storm and the soak use a real client:
rpcfw's Channel for both servers by default (``--client``), so both servers see the same bytes.
Only 127.0.0.1 is used. Every loop is bounded by a count and by a time limit. The report is
written to ``benchmarks/results/<date>-abuse.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from abuse_lib.echo_server import serve
from abuse_lib.log import log
from abuse_lib.plan import CLIENT_DESCRIPTIONS, CLIENTS, SCENARIOS, SERVERS, Plan
from abuse_lib.processes import RunContext, pin_this_process
from abuse_lib.report import figures_table, render_report, results_table
from abuse_lib.runner import run_scenarios
from abuse_lib.worker import run_jobs
from suite_lib.processes import Child, generate, on_signal
from suite_lib.report import machine_info

__all__ = ["main", "parse_args", "write_report"]

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:3]) if __doc__ else None,
    )
    parser.add_argument("--full", action="store_true", help="4 x 20,000 storm, 1M soak calls")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count by this")
    parser.add_argument("--only", action="append", choices=SCENARIOS, help="run this scenario")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument(
        "--client",
        choices=tuple(CLIENTS),
        default="rpcfw",
        help="client for normal calls, storm and soak: rpcfw's Channel for both servers "
        "(default), 'native' (rpcfw for rpcfw, grpc.aio for grpc.aio) or grpc.aio for both",
    )
    parser.add_argument("--storm-workers", type=int, help="storm client processes (4)")
    parser.add_argument("--storm-calls", type=int, help="calls per storm process")
    parser.add_argument("--storm-concurrency", type=int, help="calls in flight per process (4)")
    parser.add_argument("--soak-calls", type=int)
    parser.add_argument("--soak-concurrency", type=int, help="calls in flight (32)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--role", choices=("serve", "worker"), help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=SERVERS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def write_report(out: Path, data: dict[str, Any], command: str) -> Path:
    """``<date>-abuse.md`` and ``.json`` in ``out``; returns the markdown's path."""
    stem = f"{data['date']}-abuse"
    (out / f"{stem}.md").write_text(render_report(data, command))
    (out / f"{stem}.json").write_text(json.dumps(data, indent=1, default=str))
    return out / f"{stem}.md"


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.role == "serve":
        asyncio.run(serve(args.kind))
        return
    if args.role == "worker":
        run_jobs()
        return

    overrides = {
        "storm_workers": args.storm_workers,
        "storm_calls": args.storm_calls,
        "storm_concurrency": args.storm_concurrency,
        "soak_calls": args.soak_calls,
        "soak_concurrency": args.soak_concurrency,
    }
    plan = Plan.from_options(full=args.full, scale=args.scale, overrides=overrides)
    scenarios = [s for s in SCENARIOS if s in args.only] if args.only else list(SCENARIOS)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    pin_this_process(1)
    date = dt.datetime.now().strftime("%Y-%m-%d")
    args.out.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    machine["cores"] = f"{os.cpu_count()} (servers pinned to core 0, everything else to core 1)"
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="rpcfw-abuse-") as tmpdir:
            tmp = Path(tmpdir)
            log("generating code from proto/")
            generate(tmp)
            sys.path.insert(0, str(tmp))
            ctx = RunContext(plan, tmp, args.client)
            results = asyncio.run(run_scenarios(ctx, scenarios, args.servers))
    except KeyboardInterrupt:
        log("interrupted: stopping every child process; no report written")
        Child.kill_all()
        sys.exit(130)
    finally:
        Child.kill_all()
    machine["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    data = {
        "date": date,
        "elapsed_s": round(time.monotonic() - started, 1),
        "client": args.client,
        "client_text": CLIENT_DESCRIPTIONS[args.client],
        "plan": dataclasses.asdict(plan),
        "machine": machine,
        "results": results,
    }
    command = "python benchmarks/abuse.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = write_report(args.out, data, command.strip())
    print(results_table(results))
    print()
    print(figures_table(results))
    print(f"\nwrote {report}")


if __name__ == "__main__":
    main()

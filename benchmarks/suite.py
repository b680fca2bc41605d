"""Peer benchmark suite: rpcfw against plain grpclib and grpc.aio, as ratios from one run.

    python benchmarks/suite.py --quick                  # everyday use, about 2 minutes
    python benchmarks/suite.py --full                   # the whole matrix
    python benchmarks/suite.py --profile rpcfw-server   # where an rpcfw server's CPU goes

Stacks (each a server and a client): rpcfw with betterproto2 messages, rpcfw with protobuf
messages, plain grpclib (protobuf), grpc.aio (protobuf). Every server and client runs in its own
process; servers are pinned to core 0 and clients to core 1 (``taskset``). Servers bind
127.0.0.1 only. The main table pairs the same stack on both sides; two cross pairs isolate
rpcfw's server (rpcfw server + grpclib client) and rpcfw's client (grpclib server + rpcfw
client) against grpclib + grpclib with the same protobuf messages.

Cells: unary echo with 0 B / 1 KiB / 100 KiB payloads at concurrency 1, 16, 64 (and 100 KiB at
8) (calls/s over one connection, plus the p99 of the measured calls' latencies as the client saw
them), server streaming and bidi (messages/s, one stream at a time, 0 B payloads), under the
default asyncio loop and uvloop. Unary payloads are compressible text
(``suite_lib.security.payload``). Within a repeat every cell runs each pair back to
back (the pair order rotates between repeats), so a pair's ratio against grpc.aio server +
grpc.aio client comes from the same minutes of a noisy machine. Each measurement is bounded by
count and by time. The report gives medians, spread ((max - min) / median) and ratios, and is
written to ``benchmarks/results/<date>-<mode>.md`` (or ``--name``; plus ``.json`` and a
``.png`` chart if matplotlib is installed).

Transport options (``benchmarks/suite_lib/security.py``): the rpcfw (protobuf) and grpc.aio pairs
run again over TLS and again with gzip compression, on a few cells each; their ratios are
against grpc.aio with the same option, and the report adds each one's throughput as a share
of the same pair in plaintext.

The parts, one job each, are the modules of ``benchmarks/suite_lib`` (its ``__init__`` lists
them); this file is the command line, and every child process runs it again in a hidden
role (``--serve`` or ``--client``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from suite_lib import security
from suite_lib.child import run_on_loop
from suite_lib.client import client_main
from suite_lib.matrix import run_matrix
from suite_lib.model import FULL, PAIRS, PROFILE_CELL, QUICK, RESULTS, STACKS, Cell, Mode
from suite_lib.processes import Child, generate, on_signal
from suite_lib.profiling import profile
from suite_lib.report import chart, machine_info, render_report
from suite_lib.server import serve

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--quick", action="store_true", help="few cells, short runs (default)")
    what.add_argument("--full", action="store_true", help="every cell, both loops")
    what.add_argument("--profile", choices=("rpcfw-server", "rpcfw-bp-server"))
    parser.add_argument("--profiler", choices=("auto", "py-spy", "cprofile"), default="auto")
    parser.add_argument("--profile-seconds", type=float, default=8.0)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--profile-client", choices=STACKS, default="grpc.aio")
    parser.add_argument("--profile-payload", type=int, default=PROFILE_CELL.payload, help="bytes")
    parser.add_argument("--profile-concurrency", type=int, default=PROFILE_CELL.concurrency)
    parser.add_argument("--profile-option", choices=tuple(security.OPTIONS))
    parser.add_argument("--profile-side", choices=("server", "client"), default="server")
    parser.add_argument("--repeats", type=int, help="override the mode's repeat count (>= 3)")
    parser.add_argument("--duration", type=float, help="override seconds per measurement")
    parser.add_argument("--loops", nargs="+", choices=("asyncio", "uvloop"))
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--name", help="results file name without suffix (default DATE-MODE)")
    # child roles
    parser.add_argument("--serve", choices=STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    parser.add_argument("--cprofile-out", help=argparse.SUPPRESS)
    parser.add_argument("--option", choices=tuple(security.OPTIONS), help=argparse.SUPPRESS)
    parser.add_argument("--certs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        run_on_loop(
            args.loop, lambda: serve(args.serve, args.cprofile_out, args.option, args.certs)
        )
        return
    if args.client:
        run_on_loop(args.loop, lambda: client_main(args.client))
        return

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    date = dt.datetime.now().strftime("%Y-%m-%d")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="rpcfw-bench-") as tmpdir:
            tmp = Path(tmpdir)
            generate(tmp)
            if args.profile:
                text = profile(
                    args.profile,
                    args.profiler,
                    args.profile_seconds,
                    tmp,
                    args.top,
                    args.profile_client,
                    Cell("unary", args.profile_payload, args.profile_concurrency),
                    args.profile_option,
                    args.profile_side,
                )
                suffix = f"-{args.profile_option}" if args.profile_option else ""
                suffix += "-client" if args.profile_side == "client" else ""
                path = args.out / f"{date}-profile-{args.profile}{suffix}.txt"
                path.write_text(text)
                print(text)
                print(f"wrote {path}")
                return
            mode = FULL if args.full else QUICK
            if args.repeats or args.duration or args.loops:
                mode = Mode(
                    mode.name,
                    tuple(args.loops or mode.loops),
                    mode.cells,
                    args.duration or mode.duration,
                    mode.warmup,
                    max(3, args.repeats or mode.repeats),
                )
            machine = machine_info()
            data = run_matrix(mode, PAIRS, tmp)
    finally:
        Child.kill_all()
    data["date"], data["machine"] = date, machine
    data["machine"]["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    stem = args.name or f"{date}-{mode.name}"
    png = chart(data, args.out / f"{stem}.png")
    command = "python benchmarks/suite.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = render_report(data, command.strip(), png)
    (args.out / f"{stem}.md").write_text(report)
    (args.out / f"{stem}.json").write_text(json.dumps(data, indent=1))
    print(report)
    print(f"wrote {args.out / (stem + '.md')}")


if __name__ == "__main__":
    main()

"""``--profile``: loads an rpcfw server with one cell from a client on the other core and
reports the top functions by own time of the server (or the client), from py-spy samples
or cProfile, and the own time by package."""

from __future__ import annotations

import subprocess
from pathlib import Path

from . import security
from .model import PROFILE_CELL, Cell, Mode
from .processes import die_with_parent, run_job, start_client, start_server

__all__ = ["profile"]


def _py_spy() -> str | None:
    import shutil

    return shutil.which("py-spy")


def profile(
    target: str,
    profiler: str,
    seconds: float,
    tmp: Path,
    top: int,
    client_stack: str,
    cell: Cell = PROFILE_CELL,
    option: str | None = None,
    side: str = "server",
) -> str:
    """Load an rpcfw server with one cell (unary 0 B at c=64 by default, optionally over TLS
    or gzip) from a client on the other core and show the server's (or, with py-spy, the
    client's) top functions by own time."""
    stack = {"rpcfw-server": "rpcfw-pb", "rpcfw-bp-server": "rpcfw-bp"}[target]
    if profiler == "auto":
        profiler = "py-spy" if _py_spy() else "cprofile"
    if side == "client" and profiler != "py-spy":
        raise SystemExit("--profile-side client needs py-spy (pip install py-spy)")
    prof_out = str(tmp / "server.prof")
    certs = security.make_certs(tmp / "certs") if option == "tls" else None
    server = start_server(
        stack, "asyncio", tmp, prof_out if profiler == "cprofile" else None, option, certs
    )
    client = start_client(client_stack, "asyncio", tmp)
    mode = Mode("profile", ("asyncio",), (cell,), seconds, 0.5, 1)
    spy = None
    raw = tmp / "py-spy.txt"
    watched = client if side == "client" else server
    try:
        if profiler == "py-spy":
            spy = subprocess.Popen(
                [
                    *(_py_spy() or "py-spy", "record", "--pid", str(watched.proc.pid)),
                    *("--rate", "200", "--duration", str(int(seconds)), "--format", "raw"),
                    *("--output", str(raw), "--nonblocking", "--idle"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=die_with_parent,
            )
        result = run_job(client, server.port, cell, mode, option, certs)  # type: ignore[attr-defined]
        if spy is not None:
            _, err = spy.communicate(timeout=seconds + 30)
            if spy.returncode != 0:
                raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        client.stop()
        server.stop(30)
    profiled = f"{client_stack} client" if side == "client" else f"rpcfw server ({stack})"
    head = (
        f"{profiled} (asyncio loop) under {cell.name}"
        f"{f', {option}' if option else ''} "
        f"between a {stack} server and a {client_stack} client, {seconds:g} s, {profiler}: "
        f"{result.get('rate', 0):,.0f} calls/s "
        f"{'(profiler overhead included)' if profiler == 'cprofile' else ''}\n"
    )
    if profiler == "cprofile":
        return head + _cprofile_top(prof_out, top)
    return head + _pyspy_top(raw, top)


def _package(filename: str) -> str:
    parts = Path(filename).parts
    for marker in ("site-packages", "lib"):
        if marker in parts:
            rest = parts[parts.index(marker) + 1 :]
            if marker == "lib" and rest and rest[0].startswith("python"):
                rest = rest[1:]
                if rest and rest[0] == "site-packages":
                    rest = rest[1:]
                elif rest:
                    return "stdlib:" + rest[0].removesuffix(".py")
            if rest:
                return rest[0].removesuffix(".py")
    if "rpcfw" in parts:
        return "rpcfw"
    if filename.startswith("<") or filename == "~":
        return "builtins"
    if len(parts) > 1 and not Path(filename).is_absolute():  # py-spy: "h2/connection.py"
        return parts[0]
    return Path(filename).stem


def _group_lines(groups: dict[str, float], total: float) -> list[str]:
    lines = ["", "Own time by package:"]
    for name, value in sorted(groups.items(), key=lambda kv: -kv[1])[:12]:
        lines.append(f"  {value / total * 100:5.1f}%  {name}")
    return lines


def _cprofile_top(path: str, top: int) -> str:
    import pstats

    stats = pstats.Stats(path)
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in entries.values()) or 1.0
    rows = sorted(entries.items(), key=lambda kv: -kv[1][2])[:top]
    lines = [f"Top {top} functions by own time (cProfile tottime, % of profiled time):"]
    for (filename, lineno, func), (_, ncalls, tottime, _cum, _) in rows:
        where = f"{_package(filename)}:{Path(filename).name}:{lineno}" if lineno else "builtin"
        lines.append(
            f"  {tottime / total * 100:5.1f}%  {tottime:7.3f}s  {ncalls:>8}  {func}  ({where})"
        )
    groups: dict[str, float] = {}
    for (filename, _, _), v in entries.items():
        key = _package(filename)
        groups[key] = groups.get(key, 0.0) + v[2]
    return "\n".join(lines + _group_lines(groups, total)) + "\n"


def _pyspy_top(path: Path, top: int) -> str:
    own: dict[str, int] = {}
    groups: dict[str, float] = {}
    total = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.split(";")[-1]
        if "(threading.py" in stack:  # the stdin watcher thread (or grpc's): not the loop
            continue
        if "(selectors.py" in leaf:  # the event loop waiting in epoll
            idle += int(count)
            continue
        own[leaf] = own.get(leaf, 0) + int(count)
        total += int(count)
        filename = leaf.rpartition("(")[2].rstrip(")").rsplit(":", 1)[0]
        key = _package(filename)
        groups[key] = groups.get(key, 0.0) + int(count)
    busy = total / (total + idle) * 100 if total + idle else 0.0
    total = total or 1
    lines = [
        f"Server busy {busy:.0f}% of samples (the rest waiting in the loop's poll).",
        f"Top {top} functions by own time (py-spy samples, % of {total} busy samples):",
    ]
    for leaf, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {count / total * 100:5.1f}%  {leaf}")
    return "\n".join(lines + _group_lines(groups, total)) + "\n"

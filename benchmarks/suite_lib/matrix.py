"""Parent side: runs the matrix. Every pair on every cell, repeat after repeat (the pair order
rotating), against one server process per (stack, option) and one client process per stack
under each loop; it collects rates, unary p99s, errors and notes for the report."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import security
from .model import Cell, Mode, Pair
from .processes import Child, run_job, start_client, start_server

__all__ = ["run_matrix"]


def _last_line(child: Child) -> str:
    lines = [line.strip() for line in child.tail().splitlines() if line.strip()]
    return " / ".join(lines[-2:])[-300:] if len(lines) > 1 else "(nothing)"


def _uvloop_available() -> str | None:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "uvloop is not installed (`pip install uvloop`): uvloop rows skipped"
    return None


def _runs(pair: Pair, cell: Cell) -> bool:
    return pair.option is None or cell.name in security.OPTIONS[pair.option].cells


def run_matrix(mode: Mode, pairs: Sequence[Pair], tmp: Path) -> dict[str, Any]:
    notes: list[str] = []
    loops = list(mode.loops)
    if "uvloop" in loops and (why := _uvloop_available()):
        loops.remove("uvloop")
        notes.append(why)
    # results[loop][cell][pair] = list of rates; p99[loop][cell][pair] = list of unary p99s
    # (ms); errors[loop][cell][pair] = messages
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    p99: dict[str, dict[str, dict[str, list[float]]]] = {}
    errors: dict[str, dict[str, dict[str, list[str]]]] = {}
    broken: dict[tuple[str, str], str] = {}
    pairs = [p for p in pairs if any(_runs(p, cell) for cell in mode.cells)]
    # one server process per (stack, option); a client process per stack serves every option
    servers_needed = sorted({(p.server, p.option) for p in pairs}, key=str)
    clients_needed = sorted({p.client for p in pairs})
    certs = None
    cipher = None
    if any(p.option == "tls" for p in pairs):
        certs = security.make_certs(tmp / "certs")
        cipher = security.cipher_cost(certs)
    total = len(loops) * mode.repeats * sum(_runs(p, c) for p in pairs for c in mode.cells)
    done = 0
    started = time.monotonic()
    for loop in loops:
        servers = {
            (stack, option): start_server(stack, loop, tmp, option=option, certs=certs)
            for stack, option in servers_needed
        }
        clients = {c: start_client(c, loop, tmp) for c in clients_needed}
        try:
            for repeat in range(mode.repeats):
                order = list(pairs[repeat % len(pairs) :]) + list(pairs[: repeat % len(pairs)])
                for cell in mode.cells:
                    for pair in order:
                        label, server, client, option = pair
                        if (loop, label) in broken or not _runs(pair, cell):
                            continue
                        port = servers[(server, option)].port  # type: ignore[attr-defined]
                        try:
                            out = run_job(clients[client], port, cell, mode, option, certs)
                        except (TimeoutError, RuntimeError) as exc:
                            out = {"error": str(exc)[:300]}
                            clients[client].stop(1)
                            clients[client] = start_client(client, loop, tmp)
                        slot = results.setdefault(loop, {}).setdefault(cell.name, {})
                        if "rate" in out:
                            slot.setdefault(label, []).append(out["rate"])
                            if "p99_ms" in out:
                                p99.setdefault(loop, {}).setdefault(cell.name, {}).setdefault(
                                    label, []
                                ).append(out["p99_ms"])
                        else:
                            errors.setdefault(loop, {}).setdefault(cell.name, {}).setdefault(
                                label, []
                            ).append(out["error"])
                            if "first call" in out["error"]:
                                # never worked under this loop: skip its remaining cells
                                broken[(loop, label)] = out["error"]
                                notes.append(
                                    f"{label} under {loop}: skipped after `{out['error']}`; "
                                    f"its cells read 'failed'. Server stderr ends: "
                                    f"`{_last_line(servers[(server, option)])}`; "
                                    f"client stderr ends: "
                                    f"`{_last_line(clients[client])}`"
                                )
                        done += 1
                        print(
                            f"\r[{done}/{total}] {time.monotonic() - started:5.0f}s {loop} "
                            f"r{repeat + 1} {cell.name:<22} {label:<32}",
                            end="",
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            for child in (*clients.values(), *servers.values()):
                child.stop()
    print(file=sys.stderr)
    return {
        "mode": mode.name,
        "loops": loops,
        "cells": [c.name for c in mode.cells],
        "pairs": [p.label for p in pairs],
        # option rows: label -> option, and the cells each ran
        "options": {p.label: p.option for p in pairs if p.option},
        "option_cells": {
            p.label: [c.name for c in mode.cells if _runs(p, c)] for p in pairs if p.option
        },
        "results": results,
        "cipher_cost": cipher,  # OpenSSL alone, one side of a 100 KiB unary call (TLS runs)
        "p99_ms": p99,
        "errors": errors,
        "notes": notes,
        "elapsed_s": round(time.monotonic() - started, 1),
        "duration_s": mode.duration,
        "repeats": mode.repeats,
    }

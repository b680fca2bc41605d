"""The benchmark matrix as data: the stacks and the pairs of them (``Pair``, ``PAIRS``), the
cells (``Cell``), the modes (``Mode``: ``QUICK``, ``FULL``, and ``PROFILE_CELL`` for
``--profile``), the echo service's paths and the bounds of one measurement."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from . import security

__all__ = [
    "ALL_CELLS",
    "BASELINE",
    "Cell",
    "FIRST_CALL_TIMEOUT",
    "FULL",
    "MAX_CALLS",
    "Mode",
    "PAIRS",
    "PATHS",
    "PLAINTEXT_PAIRS",
    "PROFILE_CELL",
    "Pair",
    "QUICK",
    "RESULTS",
    "ROOT",
    "SERVICE",
    "STACKS",
    "STREAM_BATCH",
    "WITH_OPTIONS",
]

ROOT = Path(__file__).resolve().parents[2]  # the repository
RESULTS = Path(__file__).resolve().parents[1] / "results"  # benchmarks/results
SERVICE = "echo.v1.Echo"
PATHS = {
    "unary": f"/{SERVICE}/Unary",
    "server-stream": f"/{SERVICE}/ServerStream",
    "bidi": f"/{SERVICE}/Bidi",
}
STACKS = ("rpcfw-bp", "rpcfw-pb", "grpclib", "grpc.aio")
BASELINE = "grpc.aio + grpc.aio"


class Pair(NamedTuple):
    label: str
    server: str  # stack
    client: str  # stack
    option: str | None = None  # a transport option (security.OPTIONS): "tls", "gzip"


# the baseline first
PLAINTEXT_PAIRS = (
    Pair(BASELINE, "grpc.aio", "grpc.aio"),
    Pair("grpclib + grpclib", "grpclib", "grpclib"),
    Pair("rpcfw + rpcfw (protobuf)", "rpcfw-pb", "rpcfw-pb"),
    Pair("rpcfw + rpcfw (betterproto2)", "rpcfw-bp", "rpcfw-bp"),
    Pair("rpcfw server + grpclib client", "rpcfw-pb", "grpclib"),
    Pair("grpclib server + rpcfw client", "grpclib", "rpcfw-pb"),
)
WITH_OPTIONS = (BASELINE, "rpcfw + rpcfw (protobuf)")  # pairs run again with each option
PAIRS = (
    *PLAINTEXT_PAIRS,
    *(
        Pair(pair.label + option.suffix, pair.server, pair.client, option.name)
        for option in security.OPTIONS.values()
        for pair in PLAINTEXT_PAIRS
        if pair.label in WITH_OPTIONS
    ),
)
STREAM_BATCH = 1000  # messages per server-streaming / bidi call
MAX_CALLS = 1_000_000  # count bound of one measurement (time is the other)
FIRST_CALL_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Cell:
    kind: str  # "unary", "server-stream" or "bidi"
    payload: int = 0
    concurrency: int = 1

    @property
    def name(self) -> str:
        if self.kind != "unary":
            return f"{self.kind} msg/s"
        size = {0: "0 B", 1024: "1 KiB", 100 * 1024: "100 KiB"}.get(self.payload)
        return f"unary {size or f'{self.payload} B'} c={self.concurrency}"


ALL_CELLS = (
    *(Cell("unary", payload, concurrency) for payload in (0, 1024) for concurrency in (1, 16, 64)),
    *(Cell("unary", 100 * 1024, concurrency) for concurrency in (1, 8, 16, 64)),
    Cell("server-stream"),
    Cell("bidi"),
)


@dataclass(frozen=True, slots=True)
class Mode:
    name: str
    loops: tuple[str, ...]
    cells: tuple[Cell, ...]
    duration: float  # seconds measured per measurement
    warmup: float  # seconds of warm-up calls before it
    repeats: int


QUICK = Mode(
    "quick",
    ("asyncio",),
    (
        Cell("unary", 0, 1),
        Cell("unary", 0, 64),
        Cell("unary", 100 * 1024, 8),
        Cell("server-stream"),
        Cell("bidi"),
    ),
    duration=0.7,
    warmup=0.15,
    repeats=3,
)
FULL = Mode("full", ("asyncio", "uvloop"), ALL_CELLS, duration=2.0, warmup=0.3, repeats=3)
PROFILE_CELL = Cell("unary", 0, 64)

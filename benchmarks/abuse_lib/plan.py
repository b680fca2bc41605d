"""What one run of the abuse benchmark covers: the scenarios and their titles, the servers, the
client stacks (``--client``) and the counts and limits (``Plan``)."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["CLIENT_DESCRIPTIONS", "CLIENTS", "Plan", "SCENARIOS", "SERVERS", "TITLES"]

SERVERS = ("rpcfw", "grpc.aio")
SCENARIOS = (
    "rapid-reset",
    "steady-reset",
    "settings-flood",
    "ping-flood",
    "big-metadata",
    "cancel-storm",
    "soak",
)
TITLES = {
    "rapid-reset": "1. Rapid Reset",
    "steady-reset": "2. Steady reset rate",
    "settings-flood": "3. SETTINGS flood",
    "ping-flood": "4. PING flood, peer never reads",
    "big-metadata": "5. Oversized metadata",
    "cancel-storm": "6. Cancellation storm",
    "soak": "7. Soak",
}
# --client: the client stack (as benchmarks/suite.py names them) used against each server
CLIENTS = {
    "rpcfw": {"rpcfw": "rpcfw-pb", "grpc.aio": "rpcfw-pb"},
    "native": {"rpcfw": "rpcfw-pb", "grpc.aio": "grpc.aio"},
    "grpc.aio": {"rpcfw": "grpc.aio", "grpc.aio": "grpc.aio"},
}
# --client as the report says it
CLIENT_DESCRIPTIONS = {
    "rpcfw": "rpcfw client (rpcfw.Channel) against both servers",
    "native": "rpcfw client against rpcfw and the grpc.aio client against grpc.aio",
    "grpc.aio": "grpc.aio client against both servers",
}


@dataclasses.dataclass(frozen=True)
class Plan:
    """Counts and limits of one run (after --full, --scale and the overrides)."""

    # raw attacks
    rapid_pairs: int = 25_000
    steady_rate: float = 6000.0
    steady_seconds: float = 5.0
    settings_frames: int = 50_000
    pings: int = 50_000
    metadata_sizes: tuple[int, ...] = (100_000, 1 << 20)
    # cancellation storm
    storm_workers: int = 4
    storm_calls: int = 5_000  # per worker
    # calls in flight per worker: with more, most calls are cancelled before they reach the
    # server (4 client processes share one core), and the storm no longer hits handlers
    storm_concurrency: int = 4
    storm_delay_ms: int = 50
    storm_cancel_ms: float = 5.0
    storm_limit: float = 120.0  # seconds, per server
    after_calls: int = 1_000
    after_concurrency: int = 50
    # soak
    soak_calls: int = 200_000
    soak_concurrency: int = 32
    soak_limit: float = 240.0  # seconds, per server
    # normal calls made while an attack runs
    probe_calls: int = 20

    @classmethod
    def from_options(cls, *, full: bool, scale: float, overrides: dict[str, Any]) -> Plan:
        """The plan of ``--full`` (or the default), scaled, with the counts given explicitly
        (``overrides`` that are set) replacing the defaults."""
        plan = cls()
        if full:
            plan = dataclasses.replace(plan, storm_calls=20_000, soak_calls=1_000_000)
            plan = dataclasses.replace(plan, storm_limit=400.0, soak_limit=900.0)
        plan = plan.scaled(scale)
        return dataclasses.replace(plan, **{k: v for k, v in overrides.items() if v})

    def scaled(self, scale: float) -> Plan:
        if scale == 1.0:
            return self

        def n(x: int) -> int:
            return max(1, round(x * scale))

        return dataclasses.replace(
            self,
            rapid_pairs=n(self.rapid_pairs),
            steady_seconds=max(0.5, self.steady_seconds * scale),
            settings_frames=n(self.settings_frames),
            pings=n(self.pings),
            storm_calls=n(self.storm_calls),
            after_calls=n(self.after_calls),
            soak_calls=max(100, n(self.soak_calls)),
        )

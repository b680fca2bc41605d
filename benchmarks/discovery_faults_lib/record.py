"""What a scenario records while it runs: every call, the channel's endpoint set, the keys in
etcd, the registrars' leases, rpcfw's warnings. Times are ``time.monotonic()`` here; the
analysis makes them relative to the fault."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NamedTuple

import rpcfw
from rpcfw.registry import LeaseRegistrar, parse_instance
from rpcfw.registry.instance import DEFAULT_PREFIX

__all__ = [
    "Call",
    "ChannelSample",
    "KeySample",
    "LogCapture",
    "LogEntry",
    "Recording",
    "channel_sampler",
    "key_poller",
    "load_worker",
]

clock = time.monotonic

#: the loggers whose warnings the brief asks for (all ``rpcfw.*`` warnings are captured)
WATCHED_LOGGERS = ("rpcfw.resolver", "rpcfw.registry", "rpcfw.etcd", "rpcfw.client")


class Call(NamedTuple):
    """One unary call: when it started and ended, ``OK`` or the status name, who answered."""

    start: float
    end: float
    status: str
    server: str


@dataclass(frozen=True, slots=True)
class ChannelSample:
    t: float
    ports: tuple[int, ...]  # every subchannel's endpoint port
    ready: tuple[int, ...]  # the READY ones
    state: str  # the channel's aggregate connectivity state
    leases: Mapping[str, int | None]  # in-process server id -> its registrar's lease


@dataclass(frozen=True, slots=True)
class KeySample:
    t: float  # when the answer arrived (the poll started up to ``latency`` earlier)
    latency: float
    ports: tuple[int, ...] | None  # None: the poll failed
    error: str = ""


@dataclass(frozen=True, slots=True)
class LogEntry:
    t: float
    logger: str
    level: str
    template: str  # the unformatted message (groups repeats)
    message: str


class LogCapture(logging.Handler):
    """Keeps every rpcfw record at WARNING and above, stamped with ``clock()``."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.entries: list[LogEntry] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        self.entries.append(
            LogEntry(clock(), record.name, record.levelname, str(record.msg), message)
        )

    def install(self) -> None:
        logger = logging.getLogger("rpcfw")
        logger.setLevel(logging.WARNING)
        logger.addHandler(self)

    def uninstall(self) -> None:
        logging.getLogger("rpcfw").removeHandler(self)


@dataclass
class Recording:
    calls: list[Call] = field(default_factory=list)
    channel: list[ChannelSample] = field(default_factory=list)
    keys: list[KeySample] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)  # (time, what happened)
    #: (time, server id, True = running / False = gone)
    liveness: list[tuple[float, str, bool]] = field(default_factory=list)

    def event(self, what: str) -> float:
        now = clock()
        self.events.append((now, what))
        return now


async def _tick(next_at: float) -> None:
    await asyncio.sleep(max(0.0, next_at - clock()))


async def load_worker(
    mod: ModuleType,
    stub: Any,
    calls: list[Call],
    stop: asyncio.Event,
    *,
    call_timeout: float,
    fail_pause: float,
) -> None:
    """A closed loop of unary calls until ``stop``; after a failure it waits ``fail_pause``
    (0: it only yields, so that a channel failing calls at once cannot starve the loop)."""
    request = mod.EchoRequest(message="fault-bench")
    while not stop.is_set():
        start = clock()
        try:
            reply = await stub.unary(request, timeout=call_timeout)
        except rpcfw.RpcError as exc:
            calls.append(Call(start, clock(), exc.status.name, ""))
        except Exception as exc:  # not a gRPC status: recorded under its type
            calls.append(Call(start, clock(), type(exc).__name__, ""))
        else:
            calls.append(Call(start, clock(), "OK", str(reply.server_id)))
            continue
        await asyncio.sleep(fail_pause)


async def channel_sampler(
    channel: rpcfw.Channel,
    registrars: Callable[[], Mapping[str, LeaseRegistrar]],
    out: list[ChannelSample],
    stop: asyncio.Event,
    interval: float,
) -> None:
    """``channel._core.subchannels`` (ports, READY ones) and the leases every ``interval``."""
    core = channel._core
    next_at = clock()
    while not stop.is_set():
        subchannels = list(core.subchannels)
        out.append(
            ChannelSample(
                clock(),
                tuple(sorted(s.endpoint.port for s in subchannels)),
                tuple(sorted(s.endpoint.port for s in subchannels if s.state.value == "READY")),
                str(core.state.value),
                {name: r.lease for name, r in registrars().items()},
            )
        )
        next_at += interval
        await _tick(next_at)


async def key_poller(
    endpoint: str, service: str, out: list[KeySample], stop: asyncio.Event, interval: float
) -> None:
    """The instances etcd holds for ``service`` every ``interval`` (own client, 0.5 s per
    attempt); a failed poll is recorded as such."""
    from rpcfw.etcd import Etcd3PyClient
    from rpcfw.registry import service_prefix

    prefix = service_prefix(DEFAULT_PREFIX, service)
    client = Etcd3PyClient([endpoint], timeout=0.5)
    next_at = clock()
    try:
        while not stop.is_set():
            start = clock()
            try:
                snapshot = await client.get_prefix(prefix)
                ports = tuple(
                    sorted(parse_instance(DEFAULT_PREFIX, kv.key, kv.value).port
                           for kv in snapshot.items)
                )  # fmt: skip
            except Exception as exc:
                end = clock()
                out.append(KeySample(end, end - start, None, type(exc).__name__))
            else:
                end = clock()
                out.append(KeySample(end, end - start, ports))
            next_at = max(next_at + interval, clock())
            await _tick(next_at)
    finally:
        await client.close()

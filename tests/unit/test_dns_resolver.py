"""DnsResolver with a fake getaddrinfo: pushes changes only, keeps the last set on errors,
re-resolves on resolve_now (rate-limited) and periodically."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any

import pytest

from rpcfw.endpoint import Endpoint
from rpcfw.resolver import DnsResolver, parse_target
from tests.echo_service import wait_until


async def test_dns_resolver_pushes_changes_keeps_last_set_on_error_and_honours_resolve_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers: list[list[str] | OSError] = [
        ["10.0.0.2", "10.0.0.1"],
        ["10.0.0.1", "10.0.0.2"],
        OSError("SERVFAIL"),
        ["10.0.0.3"],
    ]
    lookups: list[str] = []

    async def fake_getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        lookups.append(host)
        answer = answers.pop(0) if answers else ["10.0.0.3"]
        if isinstance(answer, OSError):
            raise answer
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answer]

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", fake_getaddrinfo)
    updates: list[Sequence[Endpoint] | Exception] = []
    resolver = DnsResolver(
        parse_target("dns:///svc.internal:7000"),
        updates.append,
        refresh_interval=60,
        min_interval=0.01,
    )
    resolver.start()

    async def answered(count: int, hint: object) -> None:
        """Until lookup number ``count`` was answered (the resolver waits for the next hint,
        a new ``_wake`` event, once it handled the answer)."""
        await wait_until(lambda: len(lookups) == count and resolver._wake not in (None, hint))

    try:
        await answered(1, None)  # the first answer
        for count in (2, 3, 4):  # the same set reordered (no push), an error, the new set
            hint = resolver._wake
            resolver.resolve_now()
            await answered(count, hint)
    finally:
        await resolver.close()
    assert updates[0] == [Endpoint("10.0.0.1", 7000), Endpoint("10.0.0.2", 7000)]
    assert isinstance(updates[1], OSError)  # an error is reported; the channel keeps its set
    assert updates[2] == [Endpoint("10.0.0.3", 7000)]
    assert len(updates) == 3 and len(lookups) == 4
    assert resolver.authority == "svc.internal:7000"


async def test_dns_resolver_refreshes_periodically(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    async def fake_getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        nonlocal calls
        calls += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo)
    resolver = DnsResolver(
        parse_target("dns:///h:1"), lambda _: None, refresh_interval=0.05, min_interval=0.0
    )
    resolver.start()
    await wait_until(lambda: calls >= 3)  # no resolve_now: only the refresh_interval does it
    await resolver.close()

"""What both child roles (``--serve`` and ``--client``) share: the generated messages module
of a stack, and running the role's main coroutine under the asyncio loop or uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["run_on_loop", "stack_messages"]


def stack_messages(stack: str) -> Any:
    """The generated ``echo_rpcfw`` module of ``stack`` (betterproto2 or protobuf messages)."""
    if stack == "rpcfw-bp":
        from bench_bp.echo.v1 import echo_rpcfw  # type: ignore[import-not-found]

        return echo_rpcfw
    from bench_pb.echo.v1 import echo_rpcfw  # type: ignore[import-not-found]

    return echo_rpcfw


def run_on_loop(loop: str, main: Callable[[], Any]) -> None:
    """Run the coroutine ``main()`` to the end under ``loop`` ("asyncio" or "uvloop")."""
    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())

"""``Server.run()``: serve until SIGTERM/SIGINT, then drain (grpc-go's and Kratos' way).

The first signal starts ``stop(grace)`` (deregister, GOAWAY, calls in flight finish up to
``grace``, the rest end UNAVAILABLE); a second one during that drain cuts it short
(``stop(0)``). Cancelling the task that runs it stops the server with grace 0 and re-raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable, Iterable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..tls import ServerTLS
    from .server import Server

__all__ = ["SignalCatcher", "run_until_signal"]

log = logging.getLogger("rpcfw.server")

_PythonHandler = Callable[[int, FrameType | None], Any] | int | None


class SignalCatcher:
    """While entered (on a running asyncio loop), catches ``signals`` with
    ``loop.add_signal_handler`` and queues them for ``next()``; on exit removes those handlers
    and puts back the Python-level handlers (``signal.getsignal``) found on entry."""

    def __init__(self, signals: Iterable[int]) -> None:
        self.signals = tuple(dict.fromkeys(signal.Signals(s) for s in signals))
        self._caught: asyncio.Queue[signal.Signals] = asyncio.Queue()
        self._previous: dict[signal.Signals, _PythonHandler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> SignalCatcher:
        self._loop = asyncio.get_running_loop()
        try:
            for sig in self.signals:
                previous = signal.getsignal(sig)
                try:
                    self._loop.add_signal_handler(sig, self._caught.put_nowait, sig)
                except (NotImplementedError, RuntimeError, ValueError) as exc:
                    raise RuntimeError(
                        f"cannot catch {sig.name} here ({exc or type(exc).__name__}): signal "
                        "handlers need the main thread on Unix; pass signals=() to install none"
                    ) from exc
                self._previous[sig] = previous
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._restore()

    def _restore(self) -> None:
        assert self._loop is not None
        for sig, previous in self._previous.items():
            self._loop.remove_signal_handler(sig)  # sets SIG_DFL (SIGINT: default_int_handler)
            if previous is not None and signal.getsignal(sig) is not previous:
                signal.signal(sig, previous)
        self._previous.clear()

    async def next(self) -> signal.Signals:
        """The next signal caught (in arrival order, none lost)."""
        return await self._caught.get()


async def run_until_signal(
    server: Server,
    host: str,
    port: int,
    *,
    grace: float | None,
    signals: Iterable[int],
    on_started: Callable[[Server], object] | None,
    tls: ServerTLS | ssl.SSLContext | None = None,
) -> None:
    """``Server.run()``'s body: see its docstring."""
    if server._server is not None:  # else the error path below would stop it
        raise RuntimeError("server already started (run() starts it)")
    with SignalCatcher(signals) as caught:  # before start(): a signal during it is not lost
        try:
            await server.start(host, port, tls=tls)
            if on_started is not None:
                on_started(server)
            assert server._stopped is not None
            sig = await _first_signal_or(caught, server._stopped.wait())
            if sig is None:  # stopped by someone else's stop()
                return
            limit = "no time limit" if grace is None else f"grace {grace:g} s"
            log.info(
                "%s received: draining %s with %s (a second signal stops it at once)",
                sig.name, server.address, limit,
            )  # fmt: skip
            again = await _first_signal_or(caught, server.stop(grace))
            if again is not None:
                log.info("%s received again: stopping now (grace 0)", again.name)
                await server.stop(0)
        except BaseException:  # cancelled, or start()/on_started failed: stop at once
            with contextlib.suppress(Exception):
                await asyncio.shield(server.stop(0))
            raise


async def _first_signal_or(
    caught: SignalCatcher, other: Awaitable[object]
) -> signal.Signals | None:
    """Wait for the next signal or for ``other`` (a coroutine) to end, whichever is first:
    the signal, or None (``other`` done). ``other`` is cancelled if not done by then."""
    work = asyncio.ensure_future(other)
    next_signal = asyncio.ensure_future(caught.next())
    try:
        await asyncio.wait({work, next_signal}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        next_signal.cancel()
        work.cancel()  # stop() goes on: its drain is shielded
    if work.done():
        work.result()  # raise its error, if any
        return None
    return next_signal.result()

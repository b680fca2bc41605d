"""What every call under a retry or hedging policy (gRFC A6) shares: the attempt header, the
server's pushback, the deadline error, and the hedging race (attempts started
``hedgingDelay`` apart until one commits)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from .._clock import now
from .._status import Status
from ..errors import RpcError
from ..policy.retry import PUSHBACK_HEADER, HedgingState, Pushback, parse_pushback
from ._call_status import DEADLINE_EXCEEDED

__all__ = [
    "PREVIOUS_ATTEMPTS",
    "Committed",
    "Withdrawn",
    "deadline_error",
    "hedge",
    "pushback_of",
]

PREVIOUS_ATTEMPTS = "grpc-previous-rpc-attempts"

T = TypeVar("T")


def pushback_of(error: RpcError) -> Pushback | None:
    """The ``grpc-retry-pushback-ms`` a failed attempt's trailers carried, if any."""
    metadata = error.trailing_metadata
    if metadata is None:
        return None
    return parse_pushback([str(v) for v in metadata.get_all(PUSHBACK_HEADER)])


def deadline_error() -> RpcError:
    return RpcError(Status.DEADLINE_EXCEEDED, DEADLINE_EXCEEDED)


class Committed(Exception):
    """An attempt failed after it committed (its response message arrived): the call ends
    with ``error``, never retried."""

    def __init__(self, error: RpcError) -> None:
        super().__init__(error)
        self.error = error


class Withdrawn(Exception):
    """A hedged attempt that ended without an outcome of its own (it could no longer be given
    every request message): neither a failure nor a success, it counts for nothing."""


def _keep(result: object) -> None:
    pass


async def hedge(
    state: HedgingState,
    run: Callable[[int], Awaitable[T]],
    remaining: Callable[[], float],
    discard: Callable[[T], None] = _keep,
) -> T:
    """Start attempts (``run(previous attempts)``) ``hedgingDelay`` apart (at once after a
    non-fatal failure, or after the server's pushback) until one returns (it committed) or
    fails fatally; the others are then cancelled (their streams reset with CANCEL). A result
    that lost the race by an instant goes to ``discard``. The caller reports the winner's final
    outcome to ``state`` (for throttling). Without a winner, the last failure is
    raised; ``remaining()`` is the time left before the call's deadline. An attempt that
    raises ``Withdrawn`` just ends. A result won while the race itself is cancelled goes to
    ``discard`` too."""
    delay = state.policy.hedging_delay
    result: list[T] = []
    errors: list[RpcError] = []
    fatal: list[Exception] = []
    wake = anyio.Event()
    start_at = [now()]
    running = [0]

    async def attempt(previous: int) -> None:
        try:
            response = await run(previous)
        except Withdrawn:
            pass
        except Committed as committed:  # an answer, even if a failed one: it wins
            state.stopped = True
            fatal.append(committed.error)
        except RpcError as exc:
            is_fatal, pushback_delay = state.on_failure(exc.status, pushback_of(exc))
            (fatal if is_fatal else errors).append(exc)
            start_at[0] = now() + pushback_delay
        except Exception as exc:  # not a status (a bad metadata value, say): it ends the call
            state.stopped = True
            fatal.append(exc)
        else:
            if result or fatal:
                discard(response)  # another attempt won first
            else:
                result.append(response)
        finally:
            running[0] -= 1
            wake.set()

    try:
        async with anyio.create_task_group() as group:
            while not result and not fatal:
                left = remaining()
                may_start = left > 0 and state.can_start()
                if may_start and now() >= start_at[0]:
                    previous = state.started
                    state.on_started()
                    running[0] += 1
                    group.start_soon(attempt, previous)
                    start_at[0] = now() + delay
                    may_start = state.can_start()
                if running[0] == 0 and not may_start:
                    break  # nothing runs and nothing more may start
                # the attempts end by themselves at the deadline: past it, wait for them only
                wait = max(0.0, start_at[0] - now()) if may_start else math.inf
                with anyio.move_on_after(min(wait, left) if left > 0 else math.inf):
                    await wake.wait()
                if wake.is_set():
                    wake = anyio.Event()
            group.cancel_scope.cancel()
    except BaseException:  # cancelled while the losers were cancelled: nobody takes the winner
        for response in result:
            discard(response)
        raise
    if result:
        return result[0]
    if fatal:
        raise fatal[0]
    if errors:
        raise errors[-1]
    raise deadline_error()

"""``hedge()`` (client/_attempts.py) without IO: a withdrawn attempt counts for nothing, and a
winner found while the race itself is cancelled is discarded, not leaked."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from rpcfw import RpcError, Status
from rpcfw.client._attempts import Withdrawn, hedge
from rpcfw.policy import HedgingPolicy, RetryThrottling
from rpcfw.policy.retry import HedgingState, RetryThrottle

POLICY = HedgingPolicy(3, 0.0, frozenset({Status.UNAVAILABLE}))


def _forever() -> float:
    return float("inf")


async def test_a_withdrawn_attempt_is_neither_a_failure_nor_a_success() -> None:
    """The first attempt withdraws, the second fails UNAVAILABLE, the third answers: the
    throttle counts one failure only, and the answer wins."""
    throttle = RetryThrottle(RetryThrottling(10, 0.1))
    state = HedgingState(POLICY, throttle)
    outcomes: list[object] = [Withdrawn(), RpcError(Status.UNAVAILABLE, "x"), "answer"]

    async def run(previous: int) -> str:
        outcome = outcomes[previous]
        if isinstance(outcome, Exception):
            raise outcome
        return str(outcome)

    assert await hedge(state, run, _forever) == "answer"
    assert throttle.tokens == 9 and state.started == 3


async def test_only_withdrawn_attempts_end_the_race_without_a_result() -> None:
    state = HedgingState(HedgingPolicy(2, 0.0, frozenset({Status.UNAVAILABLE})))

    async def run(previous: int) -> str:
        raise Withdrawn()

    with pytest.raises(RpcError):
        await hedge(state, run, _forever)
    assert state.started == 2


async def test_a_winner_found_while_the_race_is_cancelled_has_an_owner() -> None:
    """The race is cancelled while it cancels the loser (the loser's cleanup cancels it): the
    winner is either returned or given to ``discard``, never lost."""
    state = HedgingState(HedgingPolicy(2, 0.0, frozenset({Status.UNAVAILABLE})))
    discarded: list[str] = []
    returned: list[str] = []
    loser_started = anyio.Event()
    outer = anyio.CancelScope()

    async def run(previous: int) -> str:
        if previous == 0:
            await loser_started.wait()
            return "winner"
        loser_started.set()
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                outer.cancel()
                await anyio.lowlevel.checkpoint()
        raise AssertionError("unreachable")

    with outer:
        returned.append(await hedge(state, run, _forever, discarded.append))
    assert (returned, discarded) in ((["winner"], []), ([], ["winner"]))

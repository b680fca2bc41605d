"""DeadlineGuard: a server rule for deadlines (grpc-go users write it by hand every time).

Calls without a deadline are refused (``require=True``) or given ``default``; deadlines longer
than ``maximum`` are refused or, with ``clamp=True``, shortened to it (the handler and every
call it makes see the shorter one). Refusals are INVALID_ARGUMENT with the rule in the message.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from .._deadline import current_deadline
from .._status import Status
from ..errors import RpcError
from .base import ServerInterceptor

if TYPE_CHECKING:
    from ..server import CallContext

__all__ = ["DeadlineGuard"]


class DeadlineGuard(ServerInterceptor):
    """Server interceptor for deadline rules: calls without a deadline are refused (``require``) or
    given ``default``; deadlines beyond ``maximum`` are refused or, with ``clamp``, shortened.
    Methods under ``exempt`` prefixes are left alone."""

    def __init__(
        self,
        *,
        require: bool = True,
        default: float | None = None,
        maximum: float | None = None,
        clamp: bool = False,
        exempt: Collection[str] = ("/grpc.health.v1.Health/",),
    ) -> None:
        if require and default is not None:
            raise ValueError("give either require=True or a default deadline")
        self._require = require
        self._default = default
        self._maximum = maximum
        self._clamp = clamp
        self._exempt = tuple(exempt)

    async def start(self, context: CallContext) -> None:
        if any(context.method.startswith(prefix) for prefix in self._exempt):
            return
        remaining = context.time_remaining()
        if remaining is None:
            if self._require:
                raise RpcError(Status.INVALID_ARGUMENT, "this server requires a deadline")
            if self._default is None:
                return
            self._shorten(context, self._default)
            return
        if self._maximum is not None and remaining > self._maximum:
            if not self._clamp:
                raise RpcError(
                    Status.INVALID_ARGUMENT,
                    f"deadline too far: {remaining:.3g} s (at most {self._maximum:g} s)",
                )
            self._shorten(context, self._maximum)

    @staticmethod
    def _shorten(context: CallContext, seconds: float) -> None:
        context.set_deadline(seconds)
        current_deadline.set(context.deadline)

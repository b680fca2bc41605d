"""``ActiveCall``: what the streaming paths and the call objects need of a call. A
``ClientCall`` (one stream) is one; so is a ``RetryingCall`` (attempts under a service-config
retry or hedging policy, ``_retry_stream.py``). Both share ``ClosesOnExit`` and
``receive_unary``."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self, TypeVar

from .._guard import Guard
from .._runtime import ChannelRuntime
from .._status import Status
from ..errors import RpcError
from ..metadata import Metadata

__all__ = ["ActiveCall", "ClosesOnExit", "receive_unary"]

ReqContra = TypeVar("ReqContra", contravariant=True)
RespCo = TypeVar("RespCo", covariant=True)


class ActiveCall(Protocol[ReqContra, RespCo]):
    """One client call as its users see it: send, receive, state, cancel, close."""

    @property
    def guard(self) -> Guard: ...

    @property
    def done(self) -> bool: ...

    @property
    def ended(self) -> bool: ...

    @property
    def answered(self) -> bool: ...

    @property
    def peer(self) -> str | None: ...

    @property
    def runtime(self) -> ChannelRuntime: ...

    @property
    def initial_metadata(self) -> Metadata | None: ...

    @property
    def trailing_metadata(self) -> Metadata | None: ...

    async def send(self, message: ReqContra, *, end: bool = False) -> None: ...

    async def end(self) -> None: ...

    async def recv_initial_metadata(self) -> Metadata: ...

    async def recv(self) -> RespCo | None: ...

    async def finish(self) -> None: ...

    async def recv_unary(self) -> RespCo: ...

    def cancel(self, message: str = "cancelled by the client") -> None: ...

    def close(self, error: BaseException | None = None) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class ClosesOnExit:
    """``with call:`` closes the call on the way out, with the exception that ended the block
    (None when it ended normally)."""

    def close(self, error: BaseException | None = None) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(exc)


class _Receives(Protocol[RespCo]):
    async def recv(self) -> RespCo | None: ...

    async def finish(self) -> None: ...


async def receive_unary(call: _Receives[RespCo]) -> RespCo:
    """A unary response: exactly one message, then an OK status."""
    message = await call.recv()
    if message is None:
        await call.finish()
        raise RpcError(Status.UNIMPLEMENTED, "server sent no response message")
    await call.finish()
    return message

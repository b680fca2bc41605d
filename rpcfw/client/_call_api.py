"""``ActiveCall``: what the streaming paths and the call objects need of a call. A
``ClientCall`` (one stream) is one; so is a ``RetryingCall`` (attempts under a service-config
retry or hedging policy, ``_retry_stream.py``)."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self, TypeVar

from .._guard import Guard
from .._runtime import ChannelRuntime
from ..metadata import Metadata

__all__ = ["ActiveCall"]

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

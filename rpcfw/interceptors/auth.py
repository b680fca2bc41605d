"""Token authentication: the client side adds a credential to every call's metadata, the
server side checks it before the handler runs (UNAUTHENTICATED otherwise).

- Bearer tokens: ``authorization: Bearer <token>`` (``BearerTokenAuth`` / ``TokenAuthServer``).
- API keys: a header of your choice, e.g. ``x-api-key: <key>`` (``header=``, ``scheme=None``).

A verifier is a set of accepted tokens or a callable ``verify(token, context)`` (sync or
async) returning the caller's identity (any truthy value, kept in ``context.stats.scratch``
as ``"auth.identity"`` for handlers and later interceptors) or a false value to refuse. Over
TLS, prefer ``rpcfw.Channel(call_credentials=...)`` for client tokens that must never go out
in clear text: it refuses plaintext channels; this interceptor sends whatever it is given.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any

from .._status import Status
from ..errors import RpcError
from .base import ClientCallInfo, ClientInterceptor, ServerInterceptor

if TYPE_CHECKING:
    from ..server import CallContext

__all__ = ["BearerTokenAuth", "TokenAuthServer"]

TokenSource = str | Callable[[], str | Awaitable[str]]
Verifier = Collection[str] | Callable[[str, "CallContext"], Any]


class BearerTokenAuth(ClientInterceptor):
    """Adds ``<header>: <scheme> <token>`` to every call (a fixed token, or a callable that
    returns the current one: a refreshed OAuth token, say)."""

    def __init__(
        self, token: TokenSource, *, header: str = "authorization", scheme: str | None = "Bearer"
    ) -> None:
        self._token = token
        self._header = header
        self._scheme = scheme

    async def start(self, call: ClientCallInfo) -> None:
        token = self._token if isinstance(self._token, str) else self._token()
        if inspect.isawaitable(token):
            token = await token
        value = f"{self._scheme} {token}" if self._scheme else str(token)
        call.metadata = call.metadata.replaced(self._header, value)


class TokenAuthServer(ServerInterceptor):
    """Refuses calls without a valid token with UNAUTHENTICATED (before the handler runs).
    ``exempt``: method paths (``/pkg.Service/Method``) or service prefixes (``/pkg.Service/``)
    that need no token, e.g. the health service."""

    def __init__(
        self,
        verify: Verifier,
        *,
        header: str = "authorization",
        scheme: str | None = "Bearer",
        exempt: Collection[str] = ("/grpc.health.v1.Health/",),
    ) -> None:
        self._verify = verify
        self._header = header
        self._scheme = scheme
        self._exempt = tuple(exempt)

    async def start(self, context: CallContext) -> None:
        if any(context.method.startswith(prefix) for prefix in self._exempt):
            return
        value = context.invocation_metadata.get(self._header)
        if not isinstance(value, str) or not value:
            raise RpcError(Status.UNAUTHENTICATED, f"missing {self._header} metadata")
        token = value
        if self._scheme:
            scheme, _, token = value.partition(" ")
            if scheme.lower() != self._scheme.lower() or not token:
                raise RpcError(
                    Status.UNAUTHENTICATED, f"{self._header} must be '{self._scheme} <token>'"
                )
        identity = await self._identity(token.strip(), context)
        if not identity:
            raise RpcError(Status.UNAUTHENTICATED, "invalid credentials")
        if context.stats is not None:
            context.stats.scratch["auth.identity"] = identity

    async def _identity(self, token: str, context: CallContext) -> Any:
        if not callable(self._verify):
            return token if token in self._verify else None
        result = self._verify(token, context)
        if inspect.isawaitable(result):
            result = await result
        return result

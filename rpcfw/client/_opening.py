"""How a channel opens a call: request headers (path, deadline, compression, metadata, call
credentials), the interceptors' ``start`` hooks, the pick, and the stream's opening with one
transparent retry for a call that never reached the server. A mixin of ``Channel``."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._clock import now
from .._method import CallCredentials, CallOptions, MethodSpec, ReqT, RespT
from .._status import Status
from ..balancer.base import PickInfo
from ..compression import encoding_name
from ..errors import RpcError, StreamRefusedError
from ..interceptors.base import ClientCallInfo, ClientInterceptor, safely, status_of
from ..metadata import Metadata, encode_metadata, encode_timeout
from ..transport import ConnectionLostError, TransportError
from ._call import DEADLINE_EXCEEDED, ClientCall, is_connection_failure
from ._capture import attach
from ._connection import ClientConnection

if TYPE_CHECKING:
    from ..tls import ChannelTLS
    from ._balancing import BalancingCore

__all__ = ["CallOpening"]

log = logging.getLogger("rpcfw.client")

_LOST_BEFORE_START = "connection lost before the call started"


def _opened_after_loss(call: ClientCall[Any, Any], conn: ClientConnection) -> bool:
    """The call's stream was opened on a connection whose loss had happened but had not been
    seen yet (a stream slot freed in the same instant): no byte of it left, since a lost
    connection writes nothing, and the loss never reached the stream, which would wait forever."""
    protocol = conn.protocol
    stream = call._stream
    return protocol is not None and protocol.closed and stream is not None and stream.error is None


class CallOpening:
    """The call-opening half of ``Channel`` (its attributes are the channel's)."""

    target: str
    _tls: ChannelTLS | None
    _insecure_credentials_ok: bool
    _call_credentials: CallCredentials | None
    _compression: str | None
    _base_headers: list[tuple[str, str]]
    _interceptors: tuple[ClientInterceptor, ...]
    _wait_for_ready: bool
    _core: BalancingCore
    _max_recv: int
    _max_send: int | None

    def _check_credentials_allowed(self) -> None:
        if self._tls is None and not self._insecure_credentials_ok:
            raise ValueError(
                "call credentials need a TLS channel (tls=...); pass "
                "allow_insecure_call_credentials=True to send them in clear text"
            )

    async def _credentials_metadata(
        self, spec: MethodSpec[Any, Any], options: CallOptions
    ) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        per_call = options.get("call_credentials")
        if per_call is not None:
            self._check_credentials_allowed()
        for credentials in (self._call_credentials, per_call):
            if credentials is None:
                continue
            try:
                metadata = credentials(spec.path)
                if inspect.isawaitable(metadata):
                    metadata = await metadata
            except Exception as exc:
                raise RpcError(Status.UNAUTHENTICATED, f"call credentials failed: {exc}") from exc
            headers.extend(encode_metadata(metadata))
        return headers

    def _encoding(self, options: CallOptions) -> str | None:
        if "compression" in options:
            return encoding_name(options["compression"])
        return self._compression

    def _headers(
        self,
        spec: MethodSpec[Any, Any],
        deadline: float | None,
        options: CallOptions,
        encoding: str | None,
    ) -> list[tuple[str, str]]:
        headers = self._base_headers.copy()
        headers[2] = (":path", spec.path)
        if encoding is not None:
            headers.append(("grpc-encoding", encoding))
        if deadline is not None:
            remaining = deadline - now()
            if remaining <= 0:
                raise RpcError(Status.DEADLINE_EXCEEDED, DEADLINE_EXCEEDED)
            headers.append(("grpc-timeout", encode_timeout(remaining)))
        metadata = options.get("metadata")
        if metadata:
            headers.extend(encode_metadata(metadata))
        return headers

    async def _open(
        self,
        spec: MethodSpec[ReqT, RespT],
        options: CallOptions,
        first: ReqT | None,
        end: bool,
        deadline: float | None,
        extra_headers: Sequence[tuple[str, str]] = (),
    ) -> ClientCall[ReqT, RespT]:
        """Start a call (through the interceptors' ``start`` hooks, if any): see ``_start``.
        ``extra_headers``: reserved headers (``grpc-previous-rpc-attempts``) added as is."""
        if not self._interceptors:
            return await self._start(spec, options, first, end, deadline, None, extra_headers)
        info = ClientCallInfo(
            spec.path,
            spec.cardinality,
            Metadata(options.get("metadata") or ()),
            deadline,
            self.target,
        )
        try:
            for interceptor in self._interceptors:
                try:
                    await interceptor.start(info)
                except RpcError:
                    raise
                except Exception as exc:
                    log.exception("client interceptor %r failed", interceptor)
                    raise RpcError(Status.INTERNAL, f"client interceptor failed: {exc}") from exc
            options = {**options, "metadata": info.metadata}
            return await self._start(spec, options, first, end, info.deadline, info, extra_headers)
        except BaseException as exc:
            if info.ended is None:  # never reached a call object: end here
                info.status, info.error = status_of(exc, False)
                info.ended = time.monotonic()
                for interceptor in reversed(self._interceptors):
                    safely(interceptor.on_end, info)
            raise

    async def _start(
        self,
        spec: MethodSpec[ReqT, RespT],
        options: CallOptions,
        first: ReqT | None,
        end: bool,
        deadline: float | None,
        intercepted: ClientCallInfo | None,
        extra_headers: Sequence[tuple[str, str]] = (),
    ) -> ClientCall[ReqT, RespT]:
        """Pick an endpoint and start the call. A call that never reached the server is
        retried once, transparently, on a fresh pick: a stream refused (GOAWAY race,
        REFUSED_STREAM), or one whose connection died between the pick and the stream's
        opening (nothing of it was written)."""
        wait = options.get("wait_for_ready")
        wait_for_ready = self._wait_for_ready if wait is None else wait
        key = options.get("hash_key")
        info = PickInfo(spec.path, key.encode() if isinstance(key, str) else key)
        encoding = self._encoding(options)
        headers = self._headers(spec, deadline, options, encoding)
        headers.extend(extra_headers)
        if self._call_credentials is not None or options.get("call_credentials") is not None:
            headers.extend(await self._credentials_metadata(spec, options))
        for attempt in range(2):
            conn, picked = await self._core.pick(info, deadline, wait_for_ready)
            call = ClientCall(
                conn, spec, headers, deadline, self._max_recv, self._max_send, encoding
            )
            call.on_done = picked.on_done
            attach(call)  # to a capture_call() block, if any
            if intercepted is not None:
                call.hooks, call.info = self._interceptors, intercepted
                intercepted.peer = conn.label
                intercepted.messages_sent = intercepted.bytes_sent = 0  # per attempt
            try:
                try:
                    await call.start(first, end=end)
                except (ConnectionLostError, TransportError) as exc:  # lost waiting for a slot
                    raise StreamRefusedError(f"{_LOST_BEFORE_START}: {exc}") from None
                except RpcError as exc:
                    if not (is_connection_failure(exc) and _opened_after_loss(call, conn)):
                        raise
                    raise StreamRefusedError(_LOST_BEFORE_START) from None
                if _opened_after_loss(call, conn):
                    raise StreamRefusedError(_LOST_BEFORE_START)
                if first is not None and end:  # request fully sent: wait to see it accepted
                    await call.check_accepted()
                return call
            except StreamRefusedError as exc:
                if not attempt:
                    call.hooks = None  # retried: the next attempt ends the call
                call.close(exc)
                if attempt:
                    raise
            except BaseException as exc:
                call.close(exc)
                raise
        raise AssertionError("unreachable")

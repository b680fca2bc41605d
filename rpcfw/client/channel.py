"""Channel: the client entry point. A target is resolved to endpoints, a balancer spreads
calls over them, and the four call kinds run with gRPC semantics.

Targets: ``host:port``, ``static:///h1:p1,h2:p2``, ``dns:///host:port``, ``unix:/path``
(``unix:relative``, ``unix:///abs``), ``unix-abstract:name``, or any scheme with a registered
resolver. Balancers by name (``pick_first``, ``round_robin``,
``weighted_round_robin``, ``p2c``, ``ring_hash``) or a factory.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
from typing_extensions import Unpack

from .._deadline import effective_deadline
from .._method import CallCredentials, CallOptions, MethodSpec, ReqT, RespT
from .._proto.grpc.health.v1.health_rpcfw import HEALTH_WATCH
from .._runtime import on_asyncio
from .._wire import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH, USER_AGENT
from ..balancer.base import Balancer, BalancerHelper, ConnectivityState
from ..balancer.policies import balancer_factory
from ..compression import ACCEPT_ENCODING, Compression, encoding_name
from ..errors import ChannelClosedError, RpcError
from ..interceptors.base import ClientInterceptor
from ..policy.backoff import BackoffConfig
from ..policy.retry import (
    DEFAULT_PER_CALL_RETRY_BUFFER,
    DEFAULT_RETRY_BUFFER,
    RetryBuffer,
    RetryThrottle,
)
from ..policy.service_config import ServiceConfig
from ..resolver.target import parse_target
from ..tls import ChannelTLS
from ..transport import H2Config
from ..transport.keepalive import KeepaliveConfig
from ._balancing import BalancingCore
from ._call_api import ActiveCall
from ._call_objects import ClientStreamCall, ServerStreamCall, UnaryCall
from ._connection import ConnectionOptions
from ._opening import CallOpening
from ._retry import MethodPolicy, method_policy, unary_with_policy
from ._retry_stream import open_with_policy
from ._streams import BidiStream, RequestSender, unary_response_while_sending
from ._subchannel import HealthCheck

__all__ = ["Channel"]

log = logging.getLogger("rpcfw.client")


def _channel_tls(tls: ChannelTLS | ssl.SSLContext | bool | None) -> ChannelTLS | None:
    if tls is None or tls is False:
        return None
    if tls is True:
        return ChannelTLS()
    if isinstance(tls, ssl.SSLContext):
        return ChannelTLS(context=tls)
    return tls


class Channel(CallOpening):
    """A client channel to ``target``. Create it anywhere: no IO happens until the first call.
    Close it with ``await channel.close()`` or ``async with``.

    On asyncio (and uvloop) it works either way. On trio (through anyio) use it as
    ``async with Channel(...) as channel:``: its background tasks (connections, reconnects,
    resolver) run in a task group that block opens, and leaving the block closes them all.

    ``balancer``: a policy name or a ``factory(helper) -> Balancer``.
    ``wait_for_ready``: default for calls; when False a call fails fast with UNAVAILABLE while
    no endpoint can be reached, when True it waits for one until its deadline.
    ``connect_backoff``: reconnect backoff per endpoint (gRPC defaults: 1 s, x1.6, 20 % jitter,
    120 s max).
    ``health_check``: a service name ("" for the whole server) to watch with grpc.health.v1 on
    every connection; an endpoint gets calls only while it reports SERVING.
    ``keepalive``: ping a connection that has been quiet that long and close it when the PING
    is not answered in time (off by default, as in gRPC; servers only accept pings every 5
    minutes unless configured otherwise). ``http2``: the connections' HTTP/2 limits.
    ``compression``: compress request messages (``"gzip"``, ``"deflate"``; per call:
    ``compression=``). Responses are decompressed whatever the server chose.
    ``tls``: a ``ChannelTLS`` (custom roots, client certificate for mTLS, server-name
    override), a ready ``ssl.SSLContext``, or True for the system trust store; every endpoint
    is dialed over TLS with ALPN h2, its certificate checked against its own name (a
    ``dns:///`` target's name, or the ``server_name`` override).
    ``call_credentials``: called for every call with the method path, returns metadata to
    add (a bearer token, say; sync or async); refused on a plaintext channel unless
    ``allow_insecure_call_credentials`` (grpcio refuses it too). Per call: ``call_credentials=``.
    ``interceptors``: ``rpcfw.ClientInterceptor`` objects run around every call, in order
    (see ``rpcfw.interceptors``).
    ``service_config``: retry / hedging policies and timeouts (gRFC A6). It is the default: a
    service config the resolver provides (``etcd://`` and ``local://`` read
    ``/rpcfw/config/<service>``) replaces it while there is one, unless
    ``use_resolver_config=False`` (gRPC's ``disable_service_config_lookup``).
    ``retry_buffer_size`` / ``per_call_retry_buffer_size``: how many bytes of sent request
    messages retried streaming calls may keep for replay, for the whole channel and per call
    (gRPC's 16 MiB and 256 KiB); a call that would pass either commits (no more retries).
    """

    def __init__(
        self,
        target: str,
        *,
        balancer: str | Callable[[BalancerHelper], Balancer] = "pick_first",
        max_receive_message_length: int = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
        max_send_message_length: int | None = None,
        wait_for_ready: bool = False,
        connect_backoff: BackoffConfig | None = None,
        health_check: str | None = None,
        user_agent: str | None = None,
        keepalive: KeepaliveConfig | None = None,
        http2: H2Config | None = None,
        compression: Compression | str | None = None,
        tls: ChannelTLS | ssl.SSLContext | bool | None = None,
        call_credentials: CallCredentials | None = None,
        allow_insecure_call_credentials: bool = False,
        interceptors: Sequence[ClientInterceptor] = (),
        service_config: ServiceConfig | str | Mapping[str, Any] | None = None,
        use_resolver_config: bool = True,
        retry_buffer_size: int = DEFAULT_RETRY_BUFFER,
        per_call_retry_buffer_size: int = DEFAULT_PER_CALL_RETRY_BUFFER,
    ) -> None:
        self.target = target
        self._service_config: ServiceConfig | None = None  # the one calls use
        self._default_config: ServiceConfig | None = None  # the channel's own
        self._resolver_config: ServiceConfig | None = None  # the resolver's, if any
        self._config_lookup = use_resolver_config
        self._method_policies: dict[str, MethodPolicy | None] = {}
        self._retry_throttle: RetryThrottle | None = None
        self._retry_buffer = RetryBuffer(per_call_retry_buffer_size, retry_buffer_size)
        self.set_service_config(service_config)
        factory = balancer_factory(balancer) if isinstance(balancer, str) else balancer
        self._tls = _channel_tls(tls)
        self._insecure_credentials_ok = allow_insecure_call_credentials
        self._interceptors = tuple(interceptors)
        if call_credentials is not None:
            self._check_credentials_allowed()
        self._call_credentials = call_credentials
        self._core = BalancingCore(
            parse_target(target),
            factory,
            connect_backoff or BackoffConfig(),
            options=ConnectionOptions(http2 or H2Config(), keepalive, self._tls),
            config_listener=self._on_resolver_config if use_resolver_config else None,
        )
        self._task_group: anyio.abc.TaskGroup | None = None
        self._compression = encoding_name(compression)
        self._max_recv = max_receive_message_length
        self._max_send = max_send_message_length
        self._wait_for_ready = wait_for_ready
        self._base_headers = [
            (":method", "POST"),
            (":scheme", "http" if self._tls is None else "https"),
            ("", ""),  # :path, filled per call
            (":authority", self._core.authority),
            ("te", "trailers"),
            ("content-type", "application/grpc"),
            ("user-agent", user_agent or USER_AGENT),
            ("grpc-accept-encoding", ACCEPT_ENCODING),
        ]
        if health_check is not None:
            headers = self._base_headers.copy()
            headers[2] = (":path", HEALTH_WATCH.path)
            self._core.set_health_check(HealthCheck(health_check, headers))

    def __repr__(self) -> str:
        return f"Channel({self.target!r})"

    @property
    def service_config(self) -> ServiceConfig | None:
        """The service config calls started now use: the resolver's while it provides one
        (and ``use_resolver_config``), else the channel's own (``service_config=``,
        ``set_service_config``)."""
        return self._service_config

    def set_service_config(self, config: ServiceConfig | str | Mapping[str, Any] | None) -> None:
        """Set the channel's own gRPC service config (typed, JSON text or decoded JSON; None:
        none) for the calls started from now on: per-method retry / hedging policies and
        timeouts, retry throttling (a fresh token bucket). While the resolver provides a
        config, that one applies instead (this one is the default again once it is gone).
        Invalid configs raise ValueError."""
        self._default_config = ServiceConfig.of(config)
        self._use_config(self._resolver_config or self._default_config)

    def _on_resolver_config(self, config: ServiceConfig | None) -> None:
        """The resolver found a (validated) service config for the target, or none any more."""
        self._resolver_config = config
        effective = config or self._default_config
        if effective != self._service_config:
            log.info(
                "%s: using the %s service config",
                self.target,
                "resolver's" if config is not None else "channel's",
            )
            self._use_config(effective)

    def _use_config(self, config: ServiceConfig | None) -> None:
        self._service_config = config
        self._method_policies = {}
        throttling = None if config is None else config.retry_throttling
        self._retry_throttle = None if throttling is None else RetryThrottle(throttling)

    async def __aenter__(self) -> Channel:
        if not on_asyncio():  # trio: the channel's tasks run in a task group of this block
            group = anyio.create_task_group()
            await group.__aenter__()
            self._task_group = self._core.task_group = group
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        group, self._task_group = self._task_group, None
        try:
            await self.close()
        finally:
            if group is not None:
                group.cancel_scope.cancel()  # closed: anything left is cut
                # the block's own exception is not the group's (its tasks log their failures
                # and never raise): it propagates as it is, not wrapped in an ExceptionGroup
                await group.__aexit__(None, None, None)

    async def close(self) -> None:
        """Close every connection (those still draining endpoints the resolver removed too);
        calls still running fail with UNAVAILABLE. Returns once every connection is closed and
        every task the channel started has ended. Safe to call again; cancelling a caller
        cancels only its wait (the closing goes on)."""
        await self._core.close()

    @property
    def state(self) -> str:
        """The channel's aggregate connectivity state (IDLE, CONNECTING, READY, ...)."""
        return self._core.state.value

    # -- connectivity (grpc.aio's API) -----------------------------------------------------
    def get_state(self, try_to_connect: bool = False) -> ConnectivityState:
        """The channel's aggregate connectivity state: IDLE (nothing connected or connecting:
        a new channel, or one whose connection was lost or ended by the server), CONNECTING,
        READY, TRANSIENT_FAILURE, or SHUTDOWN once closed.

        ``try_to_connect``: start connecting as a call would (the first time: start the
        resolver and balancer; later: connect the endpoints that wait IDLE for a call); the
        state returned is the one right after that (often CONNECTING already). Call it inside
        the running loop (on trio, inside ``async with Channel(...)``)."""
        if try_to_connect:
            self._core.try_to_connect()
        return self._core.state

    async def wait_for_state_change(self, last_state: ConnectivityState | str) -> None:
        """Return once the state differs from ``last_state`` (at once if it already does).
        Changes in between may be missed: read the new state with ``get_state()``. Waiting
        for a change from SHUTDOWN (a closed channel never changes again) raises
        ``ChannelClosedError``. Bound the wait yourself (``asyncio.timeout``,
        ``anyio.fail_after``)."""
        await self._core.wait_for_state_change(ConnectivityState(last_state))

    async def channel_ready(self) -> None:
        """Connect and wait until the channel is READY (``get_state(try_to_connect=True)``
        after every change, so a lost connection is retried). It waits as long as it takes
        (an unreachable server keeps it in TRANSIENT_FAILURE, retrying with backoff): bound it
        yourself, ``async with asyncio.timeout(5): await channel.channel_ready()`` (or
        ``with anyio.fail_after(5):``). A closed channel (before or during the wait) raises
        ``ChannelClosedError``."""
        state = self.get_state(try_to_connect=True)
        if state is ConnectivityState.SHUTDOWN:
            raise ChannelClosedError()
        while state is not ConnectivityState.READY:
            await self._core.wait_for_state_change(state)  # SHUTDOWN: ChannelClosedError
            state = self.get_state(try_to_connect=True)

    # -- the service config's policies (retries, hedging, timeouts: _retry*.py) ------------
    async def _policy(
        self, spec: MethodSpec[Any, Any], deadline: float | None
    ) -> MethodPolicy | None:
        if self._config_lookup and not self._core.resolved:  # the first calls: wait for the
            await self._core.wait_resolved(deadline)  # resolver, it may bring a config
        if self._service_config is None:
            return None
        policies = self._method_policies
        if spec.path not in policies:
            policies[spec.path] = method_policy(self._service_config, spec, self._retry_throttle)
        return policies[spec.path]

    async def _open_call(
        self,
        spec: MethodSpec[ReqT, RespT],
        options: CallOptions,
        request: ReqT | None,
        deadline: float | None,
    ) -> ActiveCall[ReqT, RespT]:
        """Open a call of any kind but unary-unary under its method's policy: ``request``
        for the kinds with one request, None when the application streams them."""
        policy = await self._policy(spec, deadline)
        if policy is not None:
            return await open_with_policy(self, policy, spec, options, request, deadline)
        return await self._open(spec, options, request, request is not None, deadline)

    # -- the four call kinds (what generated stubs call) ---------------------------------
    async def unary_unary(
        self, spec: MethodSpec[ReqT, RespT], request: ReqT, **options: Unpack[CallOptions]
    ) -> RespT:
        """Call a unary method: send ``request``, return the reply (RpcError on failure). ``spec``
        is the generated method constant; ``options`` are ``CallOptions`` (timeout, metadata,
        ...). The service config's retry or hedging policy applies. Generated stubs call this."""
        deadline = effective_deadline(options.get("timeout"))
        policy = await self._policy(spec, deadline)
        if policy is not None:
            return await unary_with_policy(self, policy, spec, request, options, deadline)
        with await self._open(spec, options, request, True, deadline) as call:
            return await call.recv_unary()

    def unary_stream(
        self, spec: MethodSpec[ReqT, RespT], request: ReqT, **options: Unpack[CallOptions]
    ) -> AsyncIterator[RespT]:
        """Call a server-streaming method: send ``request``, iterate over the replies (RpcError on
        failure). Generated stubs call this."""
        return self._unary_stream(spec, request, options)

    async def _unary_stream(
        self, spec: MethodSpec[ReqT, RespT], request: ReqT, options: CallOptions
    ) -> AsyncIterator[RespT]:
        deadline = effective_deadline(options.get("timeout"))
        with await self._open_call(spec, options, request, deadline) as call:
            while (message := await call.recv()) is not None:
                yield message
            await call.finish()

    async def stream_unary(
        self,
        spec: MethodSpec[ReqT, RespT],
        requests: Iterable[ReqT] | AsyncIterable[ReqT],
        **options: Unpack[CallOptions],
    ) -> RespT:
        """Call a client-streaming method: send every message of ``requests`` (an iterable or async
        iterable), half-close, return the reply. Generated stubs call this."""
        deadline = effective_deadline(options.get("timeout"))
        with await self._open_call(spec, options, None, deadline) as call:
            return await unary_response_while_sending(call, requests)

    def stream_stream(
        self, spec: MethodSpec[ReqT, RespT], **options: Unpack[CallOptions]
    ) -> BidiStream[ReqT, RespT]:
        """A bidirectional-streaming call as a ``BidiStream`` (``send``, ``recv``,
        ``done_writing``); it opens on first use. Generated stubs call this."""
        deadline = effective_deadline(options.get("timeout"))
        return BidiStream(
            lambda: self._open_call(spec, options, None, deadline), self._core.ensure_runtime
        )

    def stream_stream_iter(
        self,
        spec: MethodSpec[ReqT, RespT],
        requests: Iterable[ReqT] | AsyncIterable[ReqT],
        **options: Unpack[CallOptions],
    ) -> AsyncIterator[RespT]:
        """A bidirectional-streaming call fed from ``requests`` (an iterable or async iterable) in
        the background, iterating over the replies. Generated stubs call this."""
        return self._stream_stream_iter(spec, requests, options)

    async def _stream_stream_iter(
        self,
        spec: MethodSpec[ReqT, RespT],
        requests: Iterable[ReqT] | AsyncIterable[ReqT],
        options: CallOptions,
    ) -> AsyncIterator[RespT]:
        deadline = effective_deadline(options.get("timeout"))
        with await self._open_call(spec, options, None, deadline) as call:
            sender = RequestSender(call, requests)
            try:
                try:
                    while (message := await call.recv()) is not None:
                        yield message
                    await call.finish()
                except RpcError:
                    if sender.failure is not None:  # the request iterator failed first
                        raise sender.failure from None
                    raise
                await sender.wait()
            finally:
                await sender.stop()

    # -- call objects: the call's metadata, status, peer and cancel() ----------------------
    def unary_call(
        self, spec: MethodSpec[ReqT, RespT], request: ReqT, **options: Unpack[CallOptions]
    ) -> UnaryCall[RespT]:
        """A unary call as a ``UnaryCall``: ``reply = await call``, then (or meanwhile)
        ``call.initial_metadata``, ``trailing_metadata``, ``status``, ``peer``, ``cancel()``.
        ``spec``: the generated method constant (``ECHO_UNARY``). Starts when first awaited.
        Retried or hedged as the stub's call is (the state shown is the committed attempt's)."""
        deadline = effective_deadline(options.get("timeout"))
        return UnaryCall(
            lambda: self._open_call(spec, options, request, deadline), self._core.ensure_runtime
        )

    def server_stream_call(
        self, spec: MethodSpec[ReqT, RespT], request: ReqT, **options: Unpack[CallOptions]
    ) -> ServerStreamCall[RespT]:
        """A server-streaming call as a ``ServerStreamCall`` (``async for reply in call``),
        with the call's state. Starts at the first read."""
        deadline = effective_deadline(options.get("timeout"))
        return ServerStreamCall(
            lambda: self._open_call(spec, options, request, deadline), self._core.ensure_runtime
        )

    def client_stream_call(
        self, spec: MethodSpec[ReqT, RespT], **options: Unpack[CallOptions]
    ) -> ClientStreamCall[ReqT, RespT]:
        """A client-streaming call as a ``ClientStreamCall``: ``send``, ``done_writing``,
        ``reply = await call.response()``, with the call's state. Starts at the first use."""
        deadline = effective_deadline(options.get("timeout"))
        return ClientStreamCall(
            lambda: self._open_call(spec, options, None, deadline), self._core.ensure_runtime
        )

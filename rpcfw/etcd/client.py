"""``Etcd3PyClient``: the :class:`~rpcfw.etcd.api.EtcdClient` protocol over etcd3-py's AioClient.

- Unary calls (range, put, delete, lease grant/revoke, compact) go through etcd3-py's API methods
  and its response models, converted here into rpcfw's dataclasses (no ``Any`` leaks out).
- Streams (watch, keepalive) use etcd3-py's session and URLs (``call_rpc(..., raw=True)``) but
  rpcfw's own framing (:class:`~rpcfw.etcd._gateway.JsonObjectStream`): etcd3-py's stream decoder
  drops messages when several arrive in one read (``ModelizedStreamResponse.resp_iter`` builds a
  fresh ``ResponseIter`` per item and throws away the unread rest of the chunk; measured: of 20
  quick puts a prefix watch saw 3).
- Keepalive is one gateway ``LeaseKeepAlive`` request per refresh over a pooled HTTP connection,
  not one long-lived stream: over HTTP/1.1 the gateway answers a streamed request body only
  after the body ends (measured: four keepalives sent 1 s apart got one answer, after 4 s).

Failover: every call tries the endpoints in order, starting with the one that last worked, each
attempt bounded by ``timeout``; when all fail it raises :class:`EtcdUnavailable`. Construction does
no IO and needs no running loop; etcd3-py clients are built lazily inside the loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import etcd3.errors

from . import _gateway as gw
from .api import (
    EtcdClient,
    EtcdError,
    EtcdUnavailable,
    KeyValue,
    LeaseLost,
    Snapshot,
    WatchCompacted,
    WatchEvent,
)
from .compat import DEFAULT_SERVER_VERSION, NoProbeAioClient

__all__ = ["Etcd3PyClient"]

T = TypeVar("T")

_NO_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=None, sock_read=None)
# Errors that mean "this endpoint did not answer": try the next one.
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    OSError,
    TimeoutError,
    ValueError,  # a garbled (e.g. truncated) response body
)


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSPORT_ERRORS):
        return True
    if isinstance(exc, gw.GatewayError):
        return exc.unavailable
    if isinstance(exc, etcd3.errors.Etcd3Exception):
        code = getattr(exc, "code", None)
        status = getattr(exc, "status", None)
        return code in (4, 14) or status in (502, 503, 504)
    return False


def _reason(exc: BaseException | None) -> str:
    """A short human reason for a failed attempt (no library reprs)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        return f"cannot connect to {exc.host}:{exc.port}: {error.strerror or error}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _is_lease_not_found(exc: BaseException) -> bool:
    return isinstance(exc, etcd3.errors.ErrLeaseNotFound)


def _int(value: Any) -> int:
    return gw.as_int(value)


def _bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise EtcdError(f"unexpected bytes field from etcd3-py: {value!r}")


def _revision(resp: Any) -> int:
    return _int(getattr(getattr(resp, "header", None), "revision", None))


class Etcd3PyClient:
    """An etcd v3 client for one cluster, over etcd's JSON gateway (etcd3-py + aiohttp).

    ``endpoints``: ``["127.0.0.1:2379", ...]`` (``http://`` prefixes accepted).
    ``timeout``: seconds per attempt of a unary call, and for a stream to open.
    ``watch_idle``: a watch that received nothing for that long checks that its endpoint
    still answers (a count-only linearizable read, bounded by ``timeout``); a hung member
    (process stopped, sockets open) or one cut from its quorum fails that check, and the watch
    raises EtcdUnavailable so the caller resumes on another endpoint.
    ``server_version``: etcd3-py needs it to pick the API prefix and schema (not probed).
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = 2.0,
        watch_idle: float = 5.0,
        server_version: str = DEFAULT_SERVER_VERSION,
    ) -> None:
        if timeout <= 0 or watch_idle <= 0:
            raise ValueError("timeout and watch_idle must be positive")
        self._rotation = gw.EndpointRotation(endpoints)
        self._timeout = timeout
        self._watch_idle = watch_idle
        #: watch liveness probes sent, and how many found the endpoint hung
        self.watch_probes = 0
        self.watch_hangs = 0
        self._server_version = server_version
        self._clients: dict[str, Any] = {}
        self._closed = False

    @property
    def endpoints(self) -> tuple[str, ...]:
        return self._rotation.endpoints

    @property
    def timeout(self) -> float:
        return self._timeout

    # -- plumbing ------------------------------------------------------------------------------

    def _client(self, endpoint: str) -> Any:
        if self._closed:
            raise EtcdError("client is closed")
        client = self._clients.get(endpoint)
        if client is None:
            host, _, port = endpoint.rpartition(":")
            client = NoProbeAioClient(
                host=host,
                port=int(port),
                timeout=None,  # bounded per call by asyncio.timeout instead
                server_version=self._server_version,
                cluster_version=self._server_version,
            )
            self._clients[endpoint] = client
        return client

    async def _call(self, op: Callable[[Any], Awaitable[T]], what: str) -> T:
        """Run ``op(aio_client)`` against each endpoint in turn until one answers."""
        last: BaseException | None = None
        for endpoint in self._rotation.order():
            try:
                async with asyncio.timeout(self._timeout):
                    result = await op(self._client(endpoint))
            except Exception as exc:
                if not (isinstance(exc, EtcdUnavailable) or _is_unavailable(exc)):
                    if isinstance(exc, EtcdError) and not isinstance(exc, gw.GatewayError):
                        raise
                    raise EtcdError(f"etcd {what} failed: {exc!r}") from exc
                last = exc
                self._rotation.failed(endpoint)
                continue
            self._rotation.succeeded(endpoint)
            return result
        raise EtcdUnavailable(
            f"etcd {what}: no endpoint answered within {self._timeout}s "
            f"({', '.join(self.endpoints)}): {_reason(last)}"
        ) from last

    # -- KV ------------------------------------------------------------------------------------

    async def get_prefix(self, prefix: str) -> Snapshot:
        async def op(c: Any) -> Snapshot:
            resp = await c.range(prefix, prefix=True, serializable=False)
            items = [
                KeyValue(
                    key=_bytes(kv.key).decode("utf-8", errors="surrogateescape"),
                    value=_bytes(getattr(kv, "value", None)),
                    mod_revision=_int(getattr(kv, "mod_revision", None)),
                    lease=_int(getattr(kv, "lease", None)),
                )
                for kv in (getattr(resp, "kvs", None) or [])
            ]
            return Snapshot(revision=_revision(resp), items=items)

        return await self._call(op, "get_prefix")

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        async def op(c: Any) -> int:
            if lease:
                resp = await c.put(key, value, lease=lease)
            else:
                resp = await c.put(key, value)
            return _revision(resp)

        try:
            return await self._call(op, "put")
        except EtcdError as exc:
            if _is_lease_not_found(exc.__cause__ or exc):
                raise LeaseLost(f"lease {lease:x} not found") from exc
            raise

    async def delete(self, key: str) -> None:
        async def op(c: Any) -> None:
            await c.delete_range(key)

        await self._call(op, "delete")

    async def compact(self, revision: int, *, physical: bool = True) -> None:
        """Compact the history up to ``revision`` (watches from before it get WatchCompacted)."""

        async def op(c: Any) -> None:
            await c.compact(revision, physical=physical)

        await self._call(op, "compact")

    # -- leases --------------------------------------------------------------------------------

    async def grant_lease(self, ttl: int) -> int:
        async def op(c: Any) -> int:
            resp = await c.lease_grant(ttl)
            return _int(getattr(resp, "ID", None))

        lease = await self._call(op, "grant_lease")
        if not lease:
            raise EtcdError("etcd granted no lease id")
        return lease

    async def revoke_lease(self, lease: int) -> None:
        """Revoke ``lease`` (its keys go). Revoking a lease etcd no longer has is not an error."""

        async def op(c: Any) -> None:
            await c.lease_revoke(lease)

        try:
            await self._call(op, "revoke_lease")
        except EtcdError as exc:
            if not _is_lease_not_found(exc.__cause__ or exc):
                raise

    async def _keep_alive_once(self, lease: int) -> int:
        body = json.dumps({"ID": str(lease)}).encode() + b"\n"

        async def op(c: Any) -> int:
            async with c.call_rpc("/lease/keepalive", data=body, raw=True) as resp:
                await _raise_for_status(resp)
                frames = gw.JsonObjectStream()
                while True:
                    chunk = await resp.content.readany()
                    if not chunk:
                        raise EtcdUnavailable("keepalive stream ended without an answer")
                    for obj in frames.feed(chunk):
                        return gw.parse_keepalive(gw.unwrap_stream_message(obj))

        return await self._call(op, "keepalive")

    async def keep_alive(self, lease: int, ttl: int) -> AsyncGenerator[int, None]:
        """Refresh ``lease`` every third of its TTL; yields the TTL etcd reports each time.

        Raises LeaseLost when etcd no longer knows the lease (expired, revoked, data lost),
        EtcdUnavailable when no endpoint answers a refresh within the timeout.
        """
        interval = max(ttl, 1) / 3
        while True:
            remaining = await self._keep_alive_once(lease)
            if remaining <= 0:
                raise LeaseLost(f"lease {lease:x} is gone")
            yield remaining
            await asyncio.sleep(min(interval, remaining / 3))

    # -- watch ---------------------------------------------------------------------------------

    async def watch_prefix(
        self, prefix: str, start_revision: int
    ) -> AsyncGenerator[list[WatchEvent], None]:
        """Batches of events under ``prefix`` from ``start_revision`` on (inclusive).

        Raises WatchCompacted when ``start_revision`` is compacted, EtcdUnavailable when the
        stream cannot be opened or breaks: resume with a new watch from last revision + 1.
        """
        key = prefix.encode()
        request = {
            "create_request": {
                "key": gw.b64(key),
                "range_end": gw.b64(gw.prefix_range_end(key)),
                "start_revision": str(start_revision),
            }
        }
        frames = gw.JsonObjectStream()
        pending: list[gw.WatchMessage] = []

        async def open_stream(c: Any) -> Any:
            resp = await c.call_rpc(
                "/watch", data=request, encode=False, raw=True, timeout=_NO_TIMEOUT
            )
            try:
                await _raise_for_status(resp)
                # wait for the "created" answer so a dead endpoint fails over here
                while not pending:
                    chunk = await resp.content.readany()
                    if not chunk:
                        raise EtcdUnavailable("watch stream ended before it was created")
                    pending.extend(
                        gw.parse_watch(gw.unwrap_stream_message(o)) for o in frames.feed(chunk)
                    )
            except BaseException:
                resp.close()
                raise
            return resp

        resp = await self._call(open_stream, "watch")
        endpoint = self._rotation.current
        try:
            while True:
                for msg in pending:
                    if msg.canceled:
                        if msg.compact_revision:
                            raise WatchCompacted(msg.compact_revision)
                        raise EtcdError(f"etcd canceled the watch: {msg.cancel_reason or '?'}")
                    if msg.events:
                        yield msg.events
                pending.clear()
                try:
                    chunk = await self._read_watch(resp, endpoint, key)
                    if not chunk:
                        raise EtcdUnavailable(f"watch stream from {endpoint} ended")
                    for obj in frames.feed(chunk):
                        pending.append(gw.parse_watch(gw.unwrap_stream_message(obj)))
                except gw.GatewayError as exc:
                    self._rotation.failed(endpoint)
                    raise EtcdUnavailable(f"watch stream from {endpoint} failed: {exc}") from exc
                except _TRANSPORT_ERRORS as exc:
                    self._rotation.failed(endpoint)
                    raise EtcdUnavailable(f"watch stream from {endpoint} broke: {exc!r}") from exc
        finally:
            resp.close()

    async def _read_watch(self, resp: aiohttp.ClientResponse, endpoint: str, key: bytes) -> bytes:
        """The next chunk of a watch stream; checks the endpoint whenever the stream has been
        quiet for ``watch_idle`` (a quiet watch is normal; a hung etcd is not)."""
        while True:
            try:
                async with asyncio.timeout(self._watch_idle):
                    return await resp.content.readany()
            except TimeoutError:
                pass
            self.watch_probes += 1
            if not await self._answers(endpoint, key):
                self.watch_hangs += 1
                self._rotation.failed(endpoint)
                raise EtcdUnavailable(
                    f"etcd at {endpoint} stopped answering: the watch was quiet for "
                    f"{self._watch_idle}s and a read got no answer within {self._timeout}s"
                )

    async def _answers(self, endpoint: str, key: bytes) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                await self._client(endpoint).range(key, count_only=True, serializable=False)
        except Exception as exc:
            return not _is_unavailable(exc)  # an error answer still means it answers
        return True

    # -- lifecycle -----------------------------------------------------------------------------

    async def close(self) -> None:
        self._closed = True
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    async def __aenter__(self) -> Etcd3PyClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def _raise_for_status(resp: aiohttp.ClientResponse) -> None:
    if resp.status < 400:
        return
    body = await resp.read()
    try:
        obj = json.loads(body)
        message = str(obj.get("error") or obj.get("message") or body[:200])
        code = gw.as_int(obj.get("code"))
    except (ValueError, AttributeError):
        message, code = body[:200].decode(errors="replace"), 2
    raise gw.GatewayError(message, code, resp.status)


if TYPE_CHECKING:

    def _conforms(client: Etcd3PyClient) -> EtcdClient:  # mypy checks the protocol here
        return client

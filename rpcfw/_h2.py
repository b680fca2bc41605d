"""HTTP/2 connections for rpcfw, on grpclib's protocol layer (asyncio transport + h2 glue).

What rpcfw changes there, and why (see DESIGN.md):
- h2 treats any received GOAWAY as the end of the connection and fails every stream, so a
  server's graceful drain would kill calls in flight. ``GracefulH2Connection`` turns a GOAWAY
  into "no new streams above last_stream_id"; streams at or below it finish (RFC 9113 6.8).
  That holds for a GOAWAY with an error code too: grpcio's server, stopped without grace, sends
  GOAWAY (INTERNAL_ERROR) and then each call's UNAVAILABLE trailers, which must be read.
- h2 goes to CLOSED after *sending* GOAWAY, which forbids finishing streams, so the server
  writes its GOAWAY frames itself (``send_goaway``) and refuses later streams on its own.
- the reset code of a RST_STREAM is kept on the stream, so a client maps CANCEL to CANCELLED,
  REFUSED_STREAM to UNAVAILABLE, and so on.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, cast

from grpclib.config import Configuration
from grpclib.protocol import AbstractHandler, Connection, EventsProcessor, H2Protocol, Stream
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated, PingAckReceived, StreamReset
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame

__all__ = [
    "MAX_STREAM_ID",
    "ConnectionEvents",
    "GracefulH2Connection",
    "RpcfwProtocol",
    "h2_config",
    "send_goaway",
    "send_ping",
]

MAX_STREAM_ID = 2**31 - 1
_DRAIN_PING = b"rpcfwdrn"


def h2_config(client_side: bool) -> H2Configuration:
    return H2Configuration(
        client_side=client_side,
        header_encoding="ascii",
        validate_inbound_headers=False,
        validate_outbound_headers=False,
        normalize_inbound_headers=False,
        normalize_outbound_headers=False,
    )


class GracefulH2Connection(H2Connection):
    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Any], list[Any]]:
        event = ConnectionTerminated()
        try:
            event.error_code = ErrorCodes(frame.error_code)
        except ValueError:
            event.error_code = frame.error_code
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data
        return [], [event]


class ConnectionEvents:
    """Callbacks from one connection to its owner (a client connection or the server)."""

    def on_goaway(self, last_stream_id: int) -> None:
        """The peer sent GOAWAY: no new streams; those up to ``last_stream_id`` may finish."""

    def on_idle(self) -> None:
        """The last open stream was released."""

    def on_ping_ack(self, data: bytes) -> None:
        """A PING we sent was acknowledged."""

    def on_closed(self) -> None:
        """The connection is gone (lost, reset or closed by us)."""


class _Processor(EventsProcessor):
    def __init__(self, handler: AbstractHandler, connection: Connection, events: ConnectionEvents):
        super().__init__(handler, connection)
        self.events = events
        self.goaway_last_stream_id: int | None = None
        # per open stream: the peer's RST_STREAM code, and streams refused by GOAWAY
        self.reset_codes: dict[int, int] = {}
        self.refused: set[int] = set()
        self.processors[ConnectionTerminated] = self.process_connection_terminated
        self.processors[StreamReset] = self.process_stream_reset
        self.processors[PingAckReceived] = self.process_ping_ack_received

    def register(self, stream: Stream) -> Callable[[], None]:
        release = super().register(stream)
        streams = self.streams
        events = self.events
        reset_codes = self.reset_codes
        refused = self.refused
        stream_id = stream.id
        assert stream_id is not None

        def release_stream() -> None:
            release()
            reset_codes.pop(stream_id, None)
            refused.discard(stream_id)
            if not streams:
                events.on_idle()

        return release_stream

    def process_stream_reset(self, event: StreamReset) -> None:
        if event.stream_id in self.streams and event.remote_reset:
            self.reset_codes[event.stream_id] = int(event.error_code)
        super().process_stream_reset(event)

    def process_connection_terminated(self, event: ConnectionTerminated) -> None:
        last = int(event.last_stream_id or 0)
        if self.goaway_last_stream_id is not None:
            last = min(last, self.goaway_last_stream_id)
        self.goaway_last_stream_id = last
        for stream_id, stream in list(self.streams.items()):
            if stream_id > last:
                self.refused.add(stream_id)
                stream.__terminated__("stream refused by GOAWAY")
        self.events.on_goaway(last)

    def process_ping_ack_received(self, event: PingAckReceived) -> None:
        super().process_ping_ack_received(event)
        self.events.on_ping_ack(bytes(event.ping_data))

    def close(self, reason: str = "Connection closed") -> None:
        already = not hasattr(self, "processors")
        super().close(reason)
        if not already:
            self.events.on_closed()


def _set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class RpcfwProtocol(H2Protocol):
    """An asyncio protocol for one HTTP/2 connection, client or server side."""

    def __init__(
        self,
        handler: AbstractHandler,
        config: Configuration,
        events: ConnectionEvents,
        *,
        client_side: bool,
    ) -> None:
        super().__init__(handler, config, h2_config(client_side))
        self.events = events
        self.transport: asyncio.Transport | None = None
        #: close as soon as the connection is made (a server accepting while it stops)
        self.refuse = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # duck-typed: uvloop's transports are not asyncio.Transport subclasses
        self.transport = cast(asyncio.Transport, transport)
        _set_nodelay(transport)
        h2_conn = GracefulH2Connection(config=self.h2_config)
        h2_conn.initiate_connection()
        initial = h2_conn.local_settings.initial_window_size
        if self.config.http2_connection_window_size > initial:
            h2_conn.increment_flow_control_window(
                self.config.http2_connection_window_size - initial
            )
        if self.config.http2_stream_window_size != initial:
            h2_conn.update_settings(
                {SettingCodes.INITIAL_WINDOW_SIZE: self.config.http2_stream_window_size}
            )
        self.connection = Connection(h2_conn, self.transport, config=self.config)
        self.connection.flush()
        self.connection.initialize()
        self.processor = _Processor(self.handler, self.connection, self.events)
        if self.refuse:
            send_goaway(self, 0)
            self.close()

    @property
    def h2(self) -> GracefulH2Connection:
        h2c = self.connection._connection
        assert isinstance(h2c, GracefulH2Connection)
        return h2c

    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def close(self) -> None:
        if hasattr(self, "processor"):
            self.processor.close()


def send_goaway(protocol: RpcfwProtocol, last_stream_id: int) -> None:
    """Write a graceful GOAWAY without moving h2 to CLOSED (streams keep working)."""
    if protocol.is_open():
        assert protocol.transport is not None
        frame = GoAwayFrame(0, last_stream_id=last_stream_id, error_code=ErrorCodes.NO_ERROR)
        protocol.connection.flush()
        protocol.transport.write(frame.serialize())


def send_ping(protocol: RpcfwProtocol, data: bytes = _DRAIN_PING) -> None:
    if protocol.is_open():
        protocol.h2.ping(data)
        protocol.connection.flush()

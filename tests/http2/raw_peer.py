"""A scripted raw HTTP/2 client that talks to a real rpcfw Server frame by frame.

Built on asyncio streams, ``hyperframe`` (building frames with ``.serialize()``, parsing them with
``Frame.parse_frame_header`` + ``parse_body``) and ``hpack`` (Encoder/Decoder), so the bytes on
the wire are exactly what a test scripts: well-formed calls, malformed frames, floods.

What the peer does on its own while it reads (and only while it reads): it acknowledges the
server's SETTINGS and PINGs and returns connection and stream window for the DATA it receives.
Everything it received is kept in order (``frames``), decoded header blocks per stream
(``streams``), so a test asserts the exact answer on the wire.

Time: nothing waits on the clock except ``LIVENESS``, a generous bound on how long one read may
wait, so a server that hangs fails the test instead of hanging it. No test measures time.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import hpack
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

import rpcfw
from rpcfw.transport import AioConnection
from tests.echo_service import make_echo_service

__all__ = [
    "ECHO_SERVER_STREAM",
    "ECHO_UNARY",
    "LIVENESS",
    "MAX_FRAME",
    "PREFACE",
    "Err",
    "Headers",
    "PeerClosedError",
    "RawPeer",
    "Setting",
    "StreamLog",
    "call_ok",
    "channel_unary",
    "echo_server",
    "grpc_message",
    "hello",
    "hpack_bomb",
    "huffman_a",
    "literal_block",
    "raw_frame",
    "raw_peer",
    "reply_message",
    "request_headers",
    "server_connections",
    "serving",
]

#: seconds: a liveness bound only (a hung server fails the test instead of hanging it); no test
#: asserts on elapsed time
LIVENESS = 10.0
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_FRAME = 16_384  # SETTINGS_MAX_FRAME_SIZE default, what rpcfw accepts
#: count bound of every read loop (far above what any test receives)
MAX_FRAMES_READ = 2_000_000

ECHO_UNARY = "/echo.v1.Echo/Unary"
ECHO_SERVER_STREAM = "/echo.v1.Echo/ServerStream"

Headers = list[tuple[str, str]]


class Err(enum.IntEnum):
    """RFC 9113 error codes, spelled out here (not imported from rpcfw) so the tests check the
    wire against the RFC, not against rpcfw's own constants."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB


class Setting(enum.IntEnum):
    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6


class PeerClosedError(AssertionError):
    """The server closed the connection before what the test waited for arrived."""


# -- bytes -------------------------------------------------------------------------------------
def raw_frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """Any frame, valid or not (unknown types, oversized lengths): 9-byte header + payload."""
    n = len(payload)
    return struct.pack(">BHBBL", n >> 16, n & 0xFFFF, frame_type, flags, stream_id) + payload


def _hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """RFC 7541 5.1 integer with an N-bit prefix; ``first`` holds the pattern bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _hpack_string(raw: bytes, huffman_coded: bytes | None = None) -> bytes:
    if huffman_coded is not None:
        return _hpack_int(len(huffman_coded), 7, 0x80) + huffman_coded
    return _hpack_int(len(raw), 7) + raw


_HUFFMAN = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


def huffman_a(count: int) -> bytes:
    """Huffman code of ``"a" * count`` (count a multiple of 8). 'a' is 5 bits, so 8 of them
    are exactly 5 bytes and the code repeats (hpack's pure-Python encoder needs minutes for a
    MiB)."""
    assert count % 8 == 0
    return _HUFFMAN.encode(b"a" * 8) * (count // 8)


def literal_block(
    headers: Iterable[tuple[str, str]], huffman: dict[str, bytes] | None = None
) -> bytes:
    """A header block of "literal header field without indexing - new name" fields (RFC 7541
    6.2.2): byte for byte what is given (case kept), and no dynamic table is touched, so the
    block can be sent any number of times. ``huffman`` maps a header name to the Huffman code
    of its value (sent with the H bit set)."""
    huffman = huffman or {}
    return b"".join(
        b"\x00" + _hpack_string(name.encode()) + _hpack_string(value.encode(), huffman.get(name))
        for name, value in headers
    )


def hpack_bomb(value_size: int, references: int) -> tuple[bytes, bytes]:
    """(head, refs): ``head`` inserts one entry ("x-b": ``value_size`` bytes) into the HPACK
    dynamic table (literal with incremental indexing, 6.2.1); ``refs`` names that entry
    (dynamic index 62) ``references`` times, one byte each."""
    head = b"\x40" + _hpack_string(b"x-b") + _hpack_string(b"v" * value_size)
    return head, _hpack_int(62, 7, 0x80) * references


def grpc_message(payload: bytes) -> bytes:
    """gRPC length-prefixed message: compressed flag 0, 4-byte length, payload."""
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def request_headers(path: str = ECHO_UNARY, extra: Sequence[tuple[str, str]] = ()) -> Headers:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "127.0.0.1"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *extra,
    ]


def headers_frames(
    stream_id: int,
    block: bytes,
    *,
    end_stream: bool,
    max_frame: int = MAX_FRAME,
    pad_length: int | None = None,
) -> bytes:
    """HEADERS (+ CONTINUATION frames when ``block`` is larger than one frame)."""
    chunks = [block[i : i + max_frame] for i in range(0, len(block), max_frame)] or [b""]
    flags = {"END_STREAM"} if end_stream else set()
    if len(chunks) == 1:
        flags.add("END_HEADERS")
    first = HeadersFrame(stream_id, data=chunks[0], flags=flags)
    if pad_length is not None:
        first.flags.add("PADDED")
        first.pad_length = pad_length
    out = [first.serialize()]
    for index, chunk in enumerate(chunks[1:], start=2):
        cont_flags = ["END_HEADERS"] if index == len(chunks) else []
        out.append(ContinuationFrame(stream_id, data=chunk, flags=cont_flags).serialize())
    return b"".join(out)


# -- what was received -------------------------------------------------------------------------
@dataclass
class StreamLog:
    """Everything the server sent on one stream."""

    stream_id: int
    blocks: list[Headers] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False  # END_STREAM received
    reset: int | None = None  # RST_STREAM error code

    def __repr__(self) -> str:  # compact: a failing assertion must not print a MiB of header
        names = [[name for name, _ in block] for block in self.blocks]
        return (
            f"<StreamLog {self.stream_id} blocks={names} body={len(self.body)}B "
            f"ended={self.ended} reset={self.reset} grpc-status={self.grpc_status}>"
        )

    @property
    def headers(self) -> Headers | None:
        return self.blocks[0] if self.blocks else None

    @property
    def trailers(self) -> Headers | None:
        """The last block once the stream ended with it (a trailers-only answer's only block)."""
        return self.blocks[-1] if self.ended and self.blocks else None

    @property
    def grpc_status(self) -> int | None:
        value = dict(self.trailers or []).get("grpc-status")
        return None if value is None else int(value)

    @property
    def messages(self) -> list[bytes]:
        out, body = [], bytes(self.body)
        while len(body) >= 5:
            length = struct.unpack(">I", body[1:5])[0]
            out.append(body[5 : 5 + length])
            body = body[5 + length :]
        assert not body, "response body ends inside a gRPC message"
        return out


class RawPeer:
    """One client connection driven by hand. Use ``raw_peer(port)`` to open and close it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder(max_header_list_size=1 << 24)
        #: every frame received, in order
        self.frames: list[Frame] = []
        self.streams: dict[int, StreamLog] = {}
        self.server_settings: dict[int, int] = {}
        self.settings_frames = 0  # SETTINGS (not ACK) received
        self.settings_acks = 0
        self.ping_acks: list[bytes] = []
        self.goaways: list[GoAwayFrame] = []
        self.resets: list[RstStreamFrame] = []
        self.eof = False
        self.reset_by_server = False  # the socket ended with a TCP RST rather than a FIN
        self.auto_reply = True  # ACK SETTINGS/PING and return window while reading
        self.next_stream_id = 1
        self._hb: tuple[int, list[bytes], bool] | None = None
        self._syncs = 0

    # -- sending -------------------------------------------------------------------------------
    def write(self, *chunks: bytes | Frame) -> None:
        """Queue frames or raw bytes (no flow-control wait: see ``drain``)."""
        self.writer.write(
            b"".join(c if isinstance(c, bytes | bytearray) else c.serialize() for c in chunks)
        )

    async def drain(self) -> None:
        """Wait until the socket takes what was written; a server that closed is not an error
        here (the test reads its GOAWAY next)."""
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(LIVENESS):  # liveness bound only
                await self.writer.drain()

    async def send(self, *chunks: bytes | Frame) -> None:
        self.write(*chunks)
        await self.drain()

    def take_stream_id(self, stream_id: int | None = None) -> int:
        sid = self.next_stream_id if stream_id is None else stream_id
        self.next_stream_id = max(self.next_stream_id, sid + 2)
        return sid

    async def handshake(self, settings: dict[int, int] | None = None) -> None:
        """Preface + our SETTINGS; wait for the server's SETTINGS."""
        self.write(PREFACE, SettingsFrame(0, settings=settings or {}))
        await self.drain()
        await self.read_until(
            lambda f: isinstance(f, SettingsFrame) and "ACK" not in f.flags, "server SETTINGS"
        )

    # -- receiving -----------------------------------------------------------------------------
    def log(self, stream_id: int) -> StreamLog:
        if stream_id not in self.streams:
            self.streams[stream_id] = StreamLog(stream_id)
        return self.streams[stream_id]

    def _reply(self, frame: Frame) -> None:
        if self.auto_reply and not self.writer.transport.is_closing():
            self.writer.write(frame.serialize())

    async def read_frame(self) -> Frame | None:
        """The next frame, or None at EOF (FIN or RST)."""
        if self.eof:
            return None
        try:
            header = await self.reader.readexactly(9)
            frame, length = Frame.parse_frame_header(memoryview(header))
            body = await self.reader.readexactly(length) if length else b""
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            self.eof = True
            self.reset_by_server = isinstance(exc, ConnectionResetError) or bool(
                getattr(self.reader, "reset", False)
            )
            return None
        frame.parse_body(memoryview(body))
        self.frames.append(frame)
        self._on_frame(frame)
        return frame

    def _on_frame(self, frame: Frame) -> None:
        if isinstance(frame, SettingsFrame):
            if "ACK" in frame.flags:
                self.settings_acks += 1
            else:
                self.settings_frames += 1
                self.server_settings.update(frame.settings)
                self._reply(SettingsFrame(0, flags=["ACK"]))
        elif isinstance(frame, PingFrame):
            if "ACK" in frame.flags:
                self.ping_acks.append(frame.opaque_data)
            else:
                self._reply(PingFrame(0, opaque_data=frame.opaque_data, flags=["ACK"]))
        elif isinstance(frame, DataFrame):
            log = self.log(frame.stream_id)
            log.body += frame.data
            if frame.flow_controlled_length:
                self._reply(WindowUpdateFrame(0, window_increment=frame.flow_controlled_length))
                if "END_STREAM" not in frame.flags:
                    self._reply(
                        WindowUpdateFrame(
                            frame.stream_id, window_increment=frame.flow_controlled_length
                        )
                    )
            if "END_STREAM" in frame.flags:
                log.ended = True
        elif isinstance(frame, HeadersFrame):
            self._hb = (frame.stream_id, [frame.data], "END_STREAM" in frame.flags)
            if "END_HEADERS" in frame.flags:
                self._header_block_done()
        elif isinstance(frame, ContinuationFrame):
            assert self._hb is not None and self._hb[0] == frame.stream_id, "stray CONTINUATION"
            self._hb[1].append(frame.data)
            if "END_HEADERS" in frame.flags:
                self._header_block_done()
        elif isinstance(frame, RstStreamFrame):
            self.resets.append(frame)
            self.log(frame.stream_id).reset = frame.error_code
        elif isinstance(frame, GoAwayFrame):
            self.goaways.append(frame)

    def _header_block_done(self) -> None:
        assert self._hb is not None
        stream_id, parts, end_stream = self._hb
        self._hb = None
        fields = self.decoder.decode(b"".join(parts), raw=True)
        log = self.log(stream_id)
        log.blocks.append([(n.decode("latin-1"), v.decode("latin-1")) for n, v in fields])
        if end_stream:
            log.ended = True

    async def read_until(self, predicate: Callable[[Frame], object], what: str) -> Frame:
        """Read until a frame matches; PeerClosedError at EOF first."""
        try:
            async with asyncio.timeout(LIVENESS):  # liveness bound only, not a measurement
                for _ in range(MAX_FRAMES_READ):
                    frame = await self.read_frame()
                    if frame is None:
                        raise PeerClosedError(f"connection closed before {what}")
                    if predicate(frame):
                        return frame
        except TimeoutError:
            raise AssertionError(f"no {what} within the liveness bound") from None
        raise AssertionError(f"no {what} within {MAX_FRAMES_READ} frames")

    async def read_until_eof(self) -> list[Frame]:
        """Read to EOF; the frames read on the way."""
        start = len(self.frames)
        try:
            async with asyncio.timeout(LIVENESS):  # liveness bound only, not a measurement
                for _ in range(MAX_FRAMES_READ):
                    if await self.read_frame() is None:
                        return self.frames[start:]
        except TimeoutError:
            raise AssertionError("the server did not close within the liveness bound") from None
        raise AssertionError(f"no EOF within {MAX_FRAMES_READ} frames")

    async def read_goaway(self) -> GoAwayFrame:
        frame = await self.read_until(lambda f: isinstance(f, GoAwayFrame), "GOAWAY")
        assert isinstance(frame, GoAwayFrame)
        return frame

    async def sync(self) -> None:
        """PING round trip: everything sent before it has been processed by the server. (Each
        PING counts against the server's ping policy: use it sparingly.)"""
        self._syncs += 1
        data = b"sync" + self._syncs.to_bytes(4, "big")
        await self.send(PingFrame(0, opaque_data=data))
        frame = await self.read_until(
            lambda f: (
                isinstance(f, GoAwayFrame)
                or (isinstance(f, PingFrame) and "ACK" in f.flags and f.opaque_data == data)
            ),
            "PING ACK",
        )
        assert isinstance(frame, PingFrame), f"server sent {frame} instead of a PING ACK"

    def frames_on(self, stream_id: int) -> list[Frame]:
        return [f for f in self.frames if f.stream_id == stream_id]

    # -- calls ---------------------------------------------------------------------------------
    def request(
        self,
        message: bytes,
        *,
        path: str = ECHO_UNARY,
        stream_id: int | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        pad_headers: int | None = None,
        pad_data: int | None = None,
    ) -> int:
        """Queue one well-formed unary request (HEADERS, then DATA with END_STREAM)."""
        sid = self.take_stream_id(stream_id)
        block = self.encoder.encode(request_headers(path, metadata))
        data = DataFrame(sid, data=grpc_message(message), flags=["END_STREAM"])
        if pad_data is not None:
            data.flags.add("PADDED")
            data.pad_length = pad_data
        self.write(headers_frames(sid, block, end_stream=False, pad_length=pad_headers), data)
        return sid

    async def response(self, stream_id: int) -> StreamLog:
        """Read until the stream ended (trailers or END_STREAM), was reset, or GOAWAY."""
        log = self.log(stream_id)
        await self.read_until(
            lambda f: log.ended or log.reset is not None or isinstance(f, GoAwayFrame),
            f"the answer on stream {stream_id}",
        )
        return log

    async def unary(self, message: bytes, **options: Any) -> StreamLog:
        """One unary call; returns what the server sent on its stream."""
        sid = self.request(message, **options)
        await self.drain()
        return await self.response(sid)

    async def close(self) -> None:
        transport = self.writer.transport
        if transport.get_write_buffer_size():
            transport.abort()  # a stalled peer: do not wait for its output
        else:
            self.writer.close()
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(LIVENESS):  # liveness bound only
                await self.writer.wait_closed()


class _Reader(asyncio.StreamReader):
    """A StreamReader that hands out what it had buffered before a connection reset, then
    EOF (``reset`` tells which). The stock one raises the reset at the next read even with
    bytes buffered, losing e.g. a GOAWAY that arrived just before a TCP RST (a server that
    closes with our bytes unread sends one)."""

    reset = False

    def set_exception(self, exc: BaseException) -> None:
        if isinstance(exc, ConnectionResetError):
            self.reset = True
            self.feed_eof()
        else:
            super().set_exception(exc)


@contextlib.asynccontextmanager
async def raw_peer(
    port: int,
    *,
    handshake: bool = True,
    settings: dict[int, int] | None = None,
    limit: int = 1 << 16,
    rcvbuf: int | None = None,
    sndbuf: int | None = None,
) -> AsyncIterator[RawPeer]:
    """A RawPeer connected to 127.0.0.1:``port`` (preface and SETTINGS exchanged unless
    ``handshake`` is false); closed on exit. ``limit`` is the StreamReader's buffer limit;
    ``rcvbuf``/``sndbuf`` set the socket buffers before connecting."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    reader = _Reader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await loop.create_connection(lambda: protocol, sock=sock)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    peer = RawPeer(reader, writer)
    try:
        if handshake:
            await peer.handshake(settings)
        yield peer
    finally:
        await peer.close()


# -- the server side -----------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def serving(services: Iterable[Any], **options: Any) -> AsyncIterator[rpcfw.Server]:
    """A started rpcfw Server on 127.0.0.1, port 0; stopped on exit."""
    server = rpcfw.Server(services, **options)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop(grace=0)


def echo_server(
    echo_pb: ModuleType, **options: Any
) -> contextlib.AbstractAsyncContextManager[rpcfw.Server]:
    return serving([make_echo_service(echo_pb, "s1")], **options)


def server_connections(server: rpcfw.Server) -> list[AioConnection]:
    """The server's open connections (its protocol objects)."""
    return [c.protocol for c in server._connections if c.protocol is not None]


def hello(echo_pb: ModuleType, message: str = "hello") -> bytes:
    """A serialized EchoRequest (the body of a raw unary call to ``ECHO_UNARY``)."""
    return echo_pb.EchoRequest(message=message).SerializeToString()  # type: ignore[no-any-return]


def reply_message(echo_pb: ModuleType, log: StreamLog) -> str:
    """The message of a successful unary echo answer (asserts :status 200, grpc-status 0 and
    exactly one response message)."""
    assert log.headers is not None and dict(log.headers).get(":status") == "200", log
    assert log.grpc_status == 0, log
    (message,) = log.messages
    return echo_pb.EchoResponse.FromString(message).message  # type: ignore[no-any-return]


async def call_ok(echo_pb: ModuleType, peer: RawPeer, message: str, **options: Any) -> int:
    """A unary echo call on the raw connection that must succeed; returns its stream id."""
    log = await peer.unary(hello(echo_pb, message), **options)
    assert reply_message(echo_pb, log) == message
    return log.stream_id


async def channel_unary(echo_pb: ModuleType, server: rpcfw.Server, message: str = "normal") -> None:
    """A normal call with rpcfw's own Channel, on a new connection; asserts the echo."""
    async with rpcfw.Channel(server.address) as channel:
        reply = await echo_pb.EchoStub(channel).unary(
            echo_pb.EchoRequest(message=message),
            timeout=LIVENESS,  # liveness bound only
        )
    assert reply.message == message

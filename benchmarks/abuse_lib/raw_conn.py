"""One raw HTTP/2 client connection for the attacks of ``benchmarks/abuse.py``: blocking,
single-threaded, writing prebuilt bytes in big chunks while (unless told not to) reading and
parsing what the server answers, so a server is never stalled by a peer that does not read.
Every loop is bounded by a deadline. Only 127.0.0.1 is ever dialled."""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hpack
from hyperframe.frame import SettingsFrame

from .h2_frames import CHUNK, GRPC_CODES, HOST, PREFACE, h2_error

__all__ = ["RawConn", "Seen"]

_FRAME_HEADER = struct.Struct(">BHBBL")  # 24-bit length as 8 + 16 bits, type, flags, stream
_END_STREAM, _ACK, _END_HEADERS, _PADDED, _PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20


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

"""HTTP/2 frame constants and serializers (RFC 9113 section 4 and 6). Pure, no state.

Parsing lives in the connection core (it is one loop over the receive buffer); this module only
names things and builds the bytes rpcfw sends.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable

__all__ = [
    "CONNECTION_PREFACE",
    "DEFAULT_MAX_FRAME_SIZE",
    "FLAG_ACK",
    "FLAG_END_HEADERS",
    "FLAG_END_STREAM",
    "FLAG_PADDED",
    "FLAG_PRIORITY",
    "FRAME_HEADER",
    "MAX_FRAME_SIZE_LIMIT",
    "MAX_STREAM_ID",
    "MAX_WINDOW",
    "ErrorCode",
    "Flag",
    "FrameType",
    "SettingCode",
    "data_frame",
    "frame",
    "goaway_frame",
    "headers_frames",
    "ping_frame",
    "rst_stream_frame",
    "settings_ack_frame",
    "settings_frame",
    "window_update_frame",
]

CONNECTION_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DEFAULT_MAX_FRAME_SIZE = 16_384
MAX_FRAME_SIZE_LIMIT = 2**24 - 1
MAX_WINDOW = 2**31 - 1
MAX_STREAM_ID = 2**31 - 1
DEFAULT_WINDOW = 65_535

#: length (24 bits as a byte and a short), type, flags, stream id (the R bit is masked on read)
FRAME_HEADER = struct.Struct(">BHBBL")
_HEADER_PACK = FRAME_HEADER.pack
_U32 = struct.Struct(">L")
_GOAWAY = struct.Struct(">LL")
_SETTING = struct.Struct(">HL")


class FrameType(enum.IntEnum):
    """HTTP/2 frame types (RFC 9113, section 6)."""

    DATA = 0x0
    HEADERS = 0x1
    PRIORITY = 0x2
    RST_STREAM = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    PING = 0x6
    GOAWAY = 0x7
    WINDOW_UPDATE = 0x8
    CONTINUATION = 0x9


#: flags as plain ints, for the per-frame hot path (IntFlag arithmetic costs an enum round trip)
FLAG_END_STREAM = FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20


class Flag(enum.IntFlag):
    """HTTP/2 frame flags (END_STREAM and ACK share a bit; the frame type tells which)."""

    END_STREAM = 0x1
    ACK = 0x1
    END_HEADERS = 0x4
    PADDED = 0x8
    PRIORITY = 0x20


class ErrorCode(enum.IntEnum):
    """HTTP/2 error codes for RST_STREAM and GOAWAY (RFC 9113, section 7)."""

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
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


class SettingCode(enum.IntEnum):
    """HTTP/2 SETTINGS parameters (RFC 9113, section 6.5.2)."""

    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6


def frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame: the 9-byte header and ``payload``."""
    length = len(payload)
    return _HEADER_PACK(length >> 16, length & 0xFFFF, frame_type, flags, stream_id) + payload


def data_frame(stream_id: int, data: bytes, end_stream: bool = False) -> bytes:
    """A DATA frame carrying ``data`` on ``stream_id``, with END_STREAM when ``end_stream``."""
    length = len(data)
    return _HEADER_PACK(length >> 16, length & 0xFFFF, 0, end_stream, stream_id) + data


def headers_frames(stream_id: int, block: bytes, end_stream: bool, max_frame_size: int) -> bytes:
    """A HEADERS frame, followed by CONTINUATION frames when ``block`` exceeds one frame."""
    flags = 1 if end_stream else 0  # END_STREAM (plain ints: no IntFlag arithmetic here)
    if len(block) <= max_frame_size:
        length = len(block)
        return _HEADER_PACK(length >> 16, length & 0xFFFF, 1, flags | 4, stream_id) + block
    chunks = [block[i : i + max_frame_size] for i in range(0, len(block), max_frame_size)]
    out = [frame(FrameType.HEADERS, flags, stream_id, chunks[0])]
    for chunk in chunks[1:-1]:
        out.append(frame(FrameType.CONTINUATION, 0, stream_id, chunk))
    out.append(frame(FrameType.CONTINUATION, Flag.END_HEADERS, stream_id, chunks[-1]))
    return b"".join(out)


def rst_stream_frame(stream_id: int, code: int) -> bytes:
    """A RST_STREAM frame ending ``stream_id`` with error ``code``."""
    return frame(FrameType.RST_STREAM, 0, stream_id, _U32.pack(code))


def settings_frame(settings: Iterable[tuple[int, int]]) -> bytes:
    """A SETTINGS frame with the given (parameter, value) pairs."""
    return frame(FrameType.SETTINGS, 0, 0, b"".join(_SETTING.pack(k, v) for k, v in settings))


def settings_ack_frame() -> bytes:
    """An empty SETTINGS frame with ACK: acknowledges the peer's SETTINGS."""
    return frame(FrameType.SETTINGS, Flag.ACK, 0)


def ping_frame(data: bytes, ack: bool = False) -> bytes:
    """A PING frame with 8 bytes of ``data`` (with ACK: the answer to a peer's PING)."""
    if len(data) != 8:
        raise ValueError("PING data must be 8 bytes")
    return frame(FrameType.PING, Flag.ACK if ack else 0, 0, data)


def goaway_frame(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    """A GOAWAY frame: the last stream id this side processes, an error code and debug data."""
    return frame(FrameType.GOAWAY, 0, 0, _GOAWAY.pack(last_stream_id, code) + debug)


def window_update_frame(stream_id: int, increment: int) -> bytes:
    """A WINDOW_UPDATE frame granting ``increment`` bytes of flow-control window to ``stream_id``
    (0: the connection)."""
    return frame(FrameType.WINDOW_UPDATE, 0, stream_id, _U32.pack(increment))

"""Limits and settings of one HTTP/2 connection, with gRPC-like defaults."""

from __future__ import annotations

from dataclasses import dataclass

from .frames import DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, MAX_FRAME_SIZE_LIMIT, MAX_WINDOW

__all__ = ["H2Config"]


@dataclass(frozen=True, slots=True)
class H2Config:
    """What one connection advertises and enforces.

    Memory one connection can make the other side hold: about ``max_concurrent_streams`` x
    ``initial_window_size`` of received body bytes (the stream window is credited only as the
    application reads; a reader waiting for one large message opens its window to that
    message's size, which the receive message limit bounds), plus the fields of one header
    block being decoded (at most ``max_header_list_size`` kept, one frame buffered) and the
    HPACK table. No state is kept per closed stream.
    """

    #: SETTINGS_MAX_CONCURRENT_STREAMS; on a server also the number of handlers that may run at
    #: once (a reset stream holds its slot until its handler has returned)
    max_concurrent_streams: int = 100
    #: SETTINGS_INITIAL_WINDOW_SIZE: per-stream receive window
    initial_window_size: int = 1 << 20
    #: connection receive window (credited as data arrives, so one slow reader stalls no other)
    connection_window_size: int = 16 << 20
    #: SETTINGS_MAX_FRAME_SIZE we accept
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    #: SETTINGS_MAX_HEADER_LIST_SIZE: larger request metadata is answered RESOURCE_EXHAUSTED on
    #: that stream only (the connection lives)
    max_header_list_size: int = 16 << 10
    #: SETTINGS_HEADER_TABLE_SIZE: HPACK dynamic table the peer may use
    header_table_size: int = 4096
    #: encoded size of one header block (HEADERS + CONTINUATION); more is a connection error
    #: (a CONTINUATION flood). A block in several frames is decoded as it arrives and values
    #: too large to keep are skipped, so this bounds work, not memory: 1 MiB of metadata is
    #: answered RESOURCE_EXHAUSTED on its stream and the connection lives
    max_header_block_size: int = 4 << 20
    #: decoded size of one header block; more (an HPACK bomb) is a connection error
    max_decoded_header_size: int = 8 << 20
    #: CONTINUATION frames in one header block (peers split at the frame size: 4 MiB is 256
    #: of them); more is a connection error, so tiny frames cannot make a block cost CPU
    max_continuation_frames: int = 1024
    #: server: RST_STREAMs a client may send for streams the server had not finished, as a token
    #: bucket (burst, per second); beyond it: GOAWAY ENHANCE_YOUR_CALM. The concurrent-handler
    #: limit already bounds the work resets can cause; this only ends connections that reset far
    #: more than a real client does (a client cancelling 1,000 calls/s for 20 s stays within it;
    #: a Rapid Reset burst of 25,000 does not)
    max_reset_burst: int = 10_000
    max_resets_per_second: float = 1_000.0
    #: server: keepalive enforcement (gRPC's defaults): PINGs closer together than this are
    #: strikes; without calls in flight the interval is 2 hours unless pings are permitted
    min_ping_interval: float = 300.0
    permit_pings_without_calls: bool = False
    max_ping_strikes: int = 2

    def __post_init__(self) -> None:
        if not DEFAULT_WINDOW <= self.initial_window_size <= MAX_WINDOW:
            raise ValueError(f"initial_window_size must be in [{DEFAULT_WINDOW}, {MAX_WINDOW}]")
        if not DEFAULT_WINDOW <= self.connection_window_size <= MAX_WINDOW:
            raise ValueError(f"connection_window_size must be in [{DEFAULT_WINDOW}, {MAX_WINDOW}]")
        if not DEFAULT_MAX_FRAME_SIZE <= self.max_frame_size <= MAX_FRAME_SIZE_LIMIT:
            raise ValueError("max_frame_size must be in [16384, 2**24-1]")
        if self.max_concurrent_streams < 1:
            raise ValueError("max_concurrent_streams must be at least 1")
        if self.max_header_block_size < self.max_header_list_size:
            raise ValueError("max_header_block_size must be >= max_header_list_size")

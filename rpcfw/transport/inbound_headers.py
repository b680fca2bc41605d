"""Header blocks as they arrive: HEADERS and CONTINUATION frames, HPACK decoding (whole or
fragment by fragment), and what a block means for its stream: a new request (or its refusal:
stream limit, GOAWAY, oversized metadata, malformed headers), a response, or trailers."""

from __future__ import annotations

from .core_state import OVERSIZED_METADATA_RESPONSE, CoreState, ProtocolViolation
from .events import (
    Event,
    RequestReceived,
    ResponseReceived,
    TrailersReceived,
)
from .frames import (
    FLAG_END_HEADERS,
    FLAG_END_STREAM,
    FLAG_PADDED,
    FLAG_PRIORITY,
    ErrorCode,
    rst_stream_frame,
)
from .hpack_decoder import DecodedBlock, HeaderBlockError, HeaderBlockTooLarge
from .stream_state import (
    StreamState,
)
from .validation import validate_request, validate_response, validate_trailers

__all__ = ["HeaderFrames"]

Headers = list[tuple[str, str]]


class HeaderFrames(CoreState):
    """The header-block half of reading frames (see InboundFrames)."""

    def _on_headers(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id == 0:
            raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0")
        if flags & (FLAG_PADDED | FLAG_PRIORITY):
            start = 0
            pad = 0
            if flags & FLAG_PADDED:
                if not payload:
                    raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "invalid padding")
                pad = payload[0]
                start = 1
            if flags & FLAG_PRIORITY:
                start += 5
            if start + pad > len(payload):
                raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "invalid padding")
            payload = payload[start : len(payload) - pad]
        if len(payload) > self.config.max_header_block_size:  # frames may be larger than it
            raise ProtocolViolation(ErrorCode.ENHANCE_YOUR_CALM, "header block too large")
        end_stream = bool(flags & FLAG_END_STREAM)
        if flags & FLAG_END_HEADERS:
            self._header_block(stream_id, self._decode(payload), end_stream, events)
            return
        # a block in several frames is decoded as it arrives: nothing but an unfinished field
        # is buffered, and values too large to keep are skipped (see HeaderDecoder.feed)
        self._hb_stream = stream_id
        self._hb_end_stream = end_stream
        self._hb_size = len(payload)
        self._hb_frames = 0
        self._decoder.begin_block(self.config.max_header_list_size)
        self._feed(payload)

    def _on_continuation(
        self, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        if not self._hb_stream:
            raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        self._hb_size += len(payload)
        self._hb_frames += 1
        if self._hb_size > self.config.max_header_block_size:
            raise ProtocolViolation(ErrorCode.ENHANCE_YOUR_CALM, "header block too large")
        if self._hb_frames > self.config.max_continuation_frames:
            raise ProtocolViolation(ErrorCode.ENHANCE_YOUR_CALM, "too many CONTINUATION frames")
        self._feed(payload)
        if flags & FLAG_END_HEADERS:
            self._hb_stream = 0
            try:
                decoded = self._decoder.end_block()
            except HeaderBlockError as exc:
                raise ProtocolViolation(ErrorCode.COMPRESSION_ERROR, f"HPACK: {exc}") from None
            self._header_block(stream_id, decoded, self._hb_end_stream, events)

    def _decode(self, block: bytes) -> DecodedBlock:
        try:  # always decode: the HPACK table must stay in step even for refused streams
            return self._decoder.decode_block(block)
        except HeaderBlockTooLarge:
            raise ProtocolViolation(ErrorCode.ENHANCE_YOUR_CALM, "header block too large") from None
        except HeaderBlockError as exc:
            raise ProtocolViolation(ErrorCode.COMPRESSION_ERROR, f"HPACK: {exc}") from None

    def _feed(self, fragment: bytes) -> None:
        try:
            self._decoder.feed(fragment)
        except HeaderBlockTooLarge:
            raise ProtocolViolation(ErrorCode.ENHANCE_YOUR_CALM, "header block too large") from None
        except HeaderBlockError as exc:
            raise ProtocolViolation(ErrorCode.COMPRESSION_ERROR, f"HPACK: {exc}") from None

    def _header_block(
        self, stream_id: int, decoded: DecodedBlock, end_stream: bool, events: list[Event]
    ) -> None:
        headers = decoded.headers
        stream = self._streams.get(stream_id)
        if stream is None:
            if not self.client and stream_id % 2 and stream_id > self.highest_inbound_stream_id:
                self._new_request(stream_id, decoded, end_stream, events)
                return
            if self._is_idle(stream_id):
                raise ProtocolViolation(ErrorCode.PROTOCOL_ERROR, "HEADERS on an idle stream")
            return  # a stream we closed: ignore
        if stream.remote_closed:
            if not stream.local_closed:
                self._stream_error(stream, ErrorCode.STREAM_CLOSED, events)
            return
        oversized = decoded.size > self.config.max_header_list_size
        if self.client and not stream.headers_received:
            if oversized:
                self._stream_error(
                    stream, ErrorCode.ENHANCE_YOUR_CALM, events, "response metadata too large"
                )
                return
            problem = validate_response(headers)
            if problem is not None:
                self._stream_error(stream, ErrorCode.PROTOCOL_ERROR, events, problem)
                return
            if headers[0][1].startswith("1") and not end_stream:
                return  # informational response: ignored
            stream.headers_received = True
            events.append(ResponseReceived(stream_id, headers.copy(), end_stream))
            if end_stream:
                self._remote_end(stream)
            return
        # trailers
        if not end_stream:
            self._stream_error(
                stream, ErrorCode.PROTOCOL_ERROR, events, "trailers without END_STREAM"
            )
            return
        if oversized:
            self._stream_error(stream, ErrorCode.ENHANCE_YOUR_CALM, events, "trailers too large")
            return
        problem = validate_trailers(headers)
        if problem is not None:
            self._stream_error(stream, ErrorCode.PROTOCOL_ERROR, events, problem)
            return
        events.append(TrailersReceived(stream_id, headers.copy()))
        self._remote_end(stream)

    def _new_request(
        self, stream_id: int, decoded: DecodedBlock, end_stream: bool, events: list[Event]
    ) -> None:
        self.highest_inbound_stream_id = stream_id
        cfg = self.config
        if self.goaway_sent_last is not None and stream_id > self.goaway_sent_last:
            self._refuse(stream_id)
            return
        if len(self._streams) >= cfg.max_concurrent_streams:
            self._refuse(stream_id)
            return
        if decoded.size > cfg.max_header_list_size:
            block = self._encoder.encode(OVERSIZED_METADATA_RESPONSE)
            self._headers_out(stream_id, block, True)
            if not end_stream:
                self._out.append(rst_stream_frame(stream_id, ErrorCode.NO_ERROR))
            return
        problem = decoded.verdict  # a block seen before was validated then
        if problem is None:
            problem = decoded.verdict = validate_request(decoded.headers) or ""
        if problem:
            self._out.append(rst_stream_frame(stream_id, ErrorCode.PROTOCOL_ERROR))
            return
        stream = StreamState(stream_id, self._peer_initial_window, cfg.initial_window_size)
        stream.headers_received = True
        stream.remote_closed = end_stream
        self._streams[stream_id] = stream
        # a copy: the decoder hands the same list out again for the same block
        events.append(RequestReceived(stream_id, decoded.headers.copy(), end_stream))

    def _refuse(self, stream_id: int) -> None:
        self.streams_refused += 1
        self._out.append(rst_stream_frame(stream_id, ErrorCode.REFUSED_STREAM))

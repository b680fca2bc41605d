"""Random frame sequences against both cores: ``receive`` never raises and the core's state
stays consistent after every call, whatever the peer sends and however the bytes are split."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from hyperframe.frame import DataFrame, GoAwayFrame, WindowUpdateFrame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcfw.transport.config import H2Config
from rpcfw.transport.connection import H2Connection
from rpcfw.transport.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    SendReady,
    StreamReset,
    TrailersReceived,
)
from rpcfw.transport.frames import CONNECTION_PREFACE, MAX_WINDOW, ErrorCode

from .peer import (
    REQUEST,
    RESPONSE,
    TRAILERS,
    FakeClock,
    ScriptedPeer,
    parse_frames,
    raw_frame,
)

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: small limits, so that random input reaches them
CONFIG = H2Config(
    max_concurrent_streams=3,
    initial_window_size=65535,
    connection_window_size=65535,
    max_header_list_size=1024,
    max_header_block_size=4096,
    max_decoded_header_size=8192,
    max_reset_burst=4,
    max_resets_per_second=1.0,
    max_ping_strikes=2,
    min_ping_interval=10.0,
)

STREAM_IDS = st.sampled_from([0, 1, 2, 3, 5, 7, 9, 11, 13, 2**31 - 1])
#: a stream as the peer would pick it: the current one, the one before, or (rarely) any id
OPEN_STREAMS = st.sampled_from(["cur", "cur", "prev"])
STREAMS = st.one_of(*[OPEN_STREAMS] * 6, STREAM_IDS)
#: symbolic header lists: "open" is a request (server core) or a response (client core)
HEADER_LISTS: dict[str, list[tuple[str, str]]] = {
    "trailers": TRAILERS,
    "trailers-only": [*RESPONSE, ("grpc-status", "0")],
    "informational": [(":status", "100")],
    # over max_header_list_size, Huffman-coded longer than it, yet small enough to be indexed
    "oversized": [*REQUEST, ("x-big", "b" * 1500)],
    "uppercase": [*REQUEST, ("Upper", "1")],
    "connection": [("connection", "close")],
    "empty": [],
    "request": REQUEST,
    "response": RESPONSE,
}
HEADER_KINDS = st.sampled_from(["open"] * 8 + ["trailers"] * 4 + sorted(HEADER_LISTS))

#: well-formed frames, mostly in a sensible order
valid = st.one_of(
    st.tuples(
        st.just("headers"),
        st.sampled_from(["next", "next", "cur"]),
        HEADER_KINDS,
        st.booleans(),  # END_STREAM
        st.one_of(st.none(), st.none(), st.integers(0, 20)),  # padding
        st.sampled_from([0, 0, 0, 3, 9]),  # split into CONTINUATIONs of this size (0: not)
    ),
    st.tuples(
        st.just("data"),
        OPEN_STREAMS,
        st.sampled_from([0, 1, 100, 5000, 16384]),
        st.booleans(),  # END_STREAM
        st.one_of(st.none(), st.none(), st.integers(0, 255)),  # padding
    ),
    st.tuples(
        st.just("data"),
        OPEN_STREAMS,
        st.sampled_from([0, 1, 100, 5000, 16384]),
        st.booleans(),  # END_STREAM
        st.one_of(st.none(), st.none(), st.integers(0, 255)),  # padding
    ),
    st.tuples(st.just("rst"), OPEN_STREAMS, st.sampled_from([0, 2, 7, 8])),
    st.tuples(
        st.just("window_update"),
        st.one_of(st.just(0), OPEN_STREAMS),
        st.sampled_from([1, 1000, 65535, 200_000]),
    ),
    st.tuples(
        st.just("window_update"),
        st.one_of(st.just(0), OPEN_STREAMS),
        st.sampled_from([1, 1000, 65535, 200_000]),
    ),
    st.tuples(
        st.just("settings"),
        st.dictionaries(
            st.sampled_from([1, 3, 4, 5, 6, 0x99]),
            st.sampled_from([0, 1, 100, 16384, 65535, 100_000]),
            max_size=3,
        ),
    ),
    st.tuples(st.just("ping"), st.booleans()),
    st.tuples(st.just("goaway"), st.sampled_from([1, 3, 2**31 - 1]), st.sampled_from([0, 2])),
    st.tuples(st.just("priority"), OPEN_STREAMS, st.sampled_from([0, 1, 3])),
    st.tuples(st.just("tick"), st.sampled_from([0.5, 5.0, 20.0, 9000.0])),
)
#: anything at all: random types, flags, ids and payloads, and frames with bad values
invalid = st.one_of(
    st.builds(
        lambda t, f, s, p: ("raw", t, f, s, p),
        st.integers(0, 12),
        st.integers(0, 255),
        STREAM_IDS,
        st.binary(max_size=40),
    ),
    st.tuples(st.just("continuation"), STREAMS, st.booleans(), st.binary(max_size=8)),
    st.tuples(
        st.just("headers_unended"), STREAMS, HEADER_KINDS, st.booleans()
    ),  # HEADERS without END_HEADERS and no CONTINUATION planned
    st.tuples(st.just("window_update"), st.one_of(st.just(0), STREAMS), st.just(0)),
    st.tuples(st.just("window_update"), st.one_of(st.just(0), STREAMS), st.just(2**31 - 1)),
    st.tuples(
        st.just("settings"),
        st.dictionaries(
            st.sampled_from([2, 4, 5]), st.sampled_from([2, 16383, 2**24, 2**31]), max_size=1
        ),
    ),
)
#: a new stream: a request (server core) or a response to one of the client core's streams
opening = st.tuples(
    st.just("headers"), st.just("next"), st.just("open"), st.booleans(), st.none(), st.just(0)
)
ops = st.builds(
    lambda head, rest: head + rest,
    st.lists(opening, max_size=2),
    st.lists(st.one_of(*[valid] * 8, invalid), max_size=30),
)
valid_ops = st.builds(
    lambda head, rest: head + rest,
    st.lists(opening, min_size=1, max_size=2),
    st.lists(valid, min_size=5, max_size=40),
)
chunks = st.lists(st.integers(1, 200), min_size=1, max_size=8)


class Script:
    """Turns ops into bytes with the peer's HPACK encoder, resolving symbolic stream ids."""

    def __init__(self, peer: ScriptedPeer) -> None:
        self.peer = peer
        self.cur = 1
        self.prev = 1
        self.opened = 0  # server: streams the client opened; client: responses begun
        self.zero = False  # the op's frame goes on stream 0

    def stream(self, ref: object) -> int:
        if ref == "cur":
            return self.cur
        if ref == "prev":
            return self.prev
        if ref == "next":
            # the client core opened streams 1, 3 and 5; a server core takes any new odd id
            new = 1 + 2 * (self.opened % 3 if self.peer.core.client else self.opened)
            self.opened += 1
            self.prev, self.cur = self.cur, new
            return new
        assert isinstance(ref, int)
        if ref == 0:
            self.zero = True
            return 1
        return ref

    def headers(self, kind: str) -> list[tuple[str, str]]:
        if kind == "open":
            return RESPONSE if self.peer.core.client else REQUEST
        return HEADER_LISTS[kind]

    def build(self, op: tuple[Any, ...]) -> bytes:
        """One op as bytes (the HPACK encoder advances only for ops that become HEADERS)."""
        self.zero = False
        data = self._build(op)
        if self.zero:  # hyperframe refuses stream 0 for stream frames: patch the id in
            data = data[:5] + b"\0\0\0\0" + data[9:]
        return data

    def _build(self, op: tuple[Any, ...]) -> bytes:
        peer = self.peer
        kind = op[0]
        if kind == "raw":
            return raw_frame(op[1], op[2], op[3], op[4])
        if kind == "headers":
            _, ref, which, end_stream, pad, split = op
            stream_id = self.stream(ref)
            block = peer.encode(self.headers(which))
            if not split:
                return peer.header_block(stream_id, block, end_stream=end_stream, pad_length=pad)
            parts = [block[i : i + split] for i in range(0, len(block), split)] or [b""]
            out = peer.header_block(
                stream_id, parts[0], end_stream=end_stream, end_headers=False, pad_length=pad
            )
            for part in parts[1:]:
                out += peer.continuation(stream_id, part, end_headers=False)
            return out + peer.continuation(stream_id, b"")
        if kind == "headers_unended":
            _, ref, which, end_stream = op
            block = peer.encode(self.headers(which))
            return peer.header_block(
                self.stream(ref), block, end_stream=end_stream, end_headers=False
            )
        if kind == "continuation":
            return peer.continuation(self.stream(op[1]), op[3], end_headers=op[2])
        if kind == "data":
            _, ref, size, end_stream, pad = op
            if pad is not None:
                size = min(size, 16383 - pad)
            data = b"d" * size
            return peer.data(self.stream(ref), data, end_stream=end_stream, pad_length=pad)
        if kind == "rst":
            return peer.rst_stream(self.stream(op[1]), op[2])
        if kind == "window_update":
            return peer.window_update(self.stream(op[1]), op[2])
        if kind == "settings":
            payload = b"".join(
                k.to_bytes(2, "big") + v.to_bytes(4, "big") for k, v in op[1].items()
            )
            return raw_frame(0x4, 0, 0, payload)
        if kind == "ping":
            return peer.ping(b"fuzzping", ack=op[1])
        if kind == "goaway":
            return peer.goaway(op[1], op[2])
        if kind == "priority":
            return raw_frame(0x2, 0, self.stream(op[1]), op[2].to_bytes(4, "big") + b"\x10")
        return b""  # tick: no bytes


class App:
    """A well-behaved application reacting to the core's events, so the fuzz also drives the
    send side (responses larger than the peer's window, trailers queued behind them, consumed
    and expect, releases once the output is out)."""

    def __init__(self, core: H2Connection) -> None:
        self.core = core
        self.finishing: set[int] = set()  # done, waiting for queued output before releasing

    def handle(self, events: list[Event]) -> None:
        core = self.core
        for event in events:
            if core.closed:
                return
            if isinstance(event, StreamReset):
                self.finishing.discard(event.stream_id)
                core.release_stream(event.stream_id)
            elif isinstance(event, RequestReceived):
                if not core.local_ended(event.stream_id):  # else reset later in this batch
                    core.send_headers(event.stream_id, RESPONSE)
                    core.send_data(event.stream_id, b"r" * 70_000)  # beyond the peer's window
                if event.end_stream:
                    self.finish(event.stream_id)
            elif isinstance(event, ResponseReceived):
                if event.end_stream:
                    self.finish(event.stream_id)
            elif isinstance(event, TrailersReceived):
                self.finish(event.stream_id)
            elif isinstance(event, DataReceived):
                core.consumed(event.stream_id, len(event.data))
                core.expect(event.stream_id, 100_000)
                if event.end_stream:
                    self.finish(event.stream_id)
            elif isinstance(event, SendReady) and event.stream_id in self.finishing:
                self.finishing.discard(event.stream_id)
                core.release_stream(event.stream_id)

    def finish(self, stream_id: int) -> None:
        core = self.core
        if not core.client and not core.local_ended(stream_id):
            core.send_headers(stream_id, TRAILERS, end_stream=True)
        if core.pending_bytes(stream_id):
            self.finishing.add(stream_id)
        else:
            core.release_stream(stream_id)


def check_invariants(core: H2Connection, output: bytes) -> None:
    config = core.config
    if not core.client:
        assert core.open_streams <= config.max_concurrent_streams
    assert core._conn_recv_window >= 0
    if not core.closed:  # an overflowing WINDOW_UPDATE closes the connection
        assert core._conn_send_window <= MAX_WINDOW
    for stream_id in core.stream_ids():
        stream = core._streams[stream_id]
        assert core.pending_bytes(stream_id) >= 0
        assert stream.pending_bytes == sum(len(data) for data, _ in stream.pending) >= 0
        # drain() waits on pending_bytes: zero must mean nothing at all is left queued
        queued = bool(stream.pending) or stream.pending_trailers is not None
        assert (core.pending_bytes(stream_id) > 0) == queued
        assert not stream.pending or stream_id in core._blocked
        assert stream.closed or stream.send_window <= MAX_WINDOW  # overflow resets it
        assert not (stream.released and stream.closed)  # such a stream is forgotten
    assert set(core._blocked) <= set(core._streams)
    open_local = sum(1 for s in core._streams.values() if not s.closed) if core.client else 0
    assert core._open_local == open_local
    for frame in parse_frames(output):  # whole, well-formed frames only
        if isinstance(frame, DataFrame):
            assert len(frame.data) <= core._peer_max_frame_size
        if isinstance(frame, WindowUpdateFrame):
            assert 1 <= frame.window_increment <= MAX_WINDOW


def feed(
    core: H2Connection,
    data: bytes,
    sizes: list[int],
    on_events: Callable[[list[Event]], None],
    ticks: dict[int, float],
    clock: FakeClock,
    well_formed: bool = False,
) -> None:
    """Feed ``data`` in chunks of ``sizes`` (cycled); check the invariants after each call.
    ``well_formed``: every header block came from a real HPACK encoder, in order, so the core
    never fails one (no COMPRESSION_ERROR, whatever the block's size or framing)."""
    offset = 0
    i = 0
    while offset < len(data):
        size = sizes[i % len(sizes)]
        i += 1
        chunk = data[offset : offset + size]
        clock.advance(ticks.get(offset, 0.0))
        offset += size
        was_closed = core.closed
        events = core.receive(chunk)
        assert isinstance(events, list)
        if was_closed:
            assert events == []
        if any(isinstance(e, ConnectionTerminated) for e in events):
            assert isinstance(events[-1], ConnectionTerminated)
            if well_formed:
                assert events[-1].error_code != ErrorCode.COMPRESSION_ERROR, events[-1]
            assert core.closed
            output = core.data_to_send()
            assert isinstance(parse_frames(output)[-1], GoAwayFrame)
            check_invariants(core, output)
            continue
        on_events(events)
        check_invariants(core, core.data_to_send())
    if core.closed:
        assert core.receive(CONNECTION_PREFACE + b"\0" * 20) == []
        assert core.data_to_send() == b""


def script(peer: ScriptedPeer, operations: list[tuple[Any, ...]]) -> tuple[bytes, dict[int, float]]:
    builder = Script(peer)
    parts: list[bytes] = []
    ticks: dict[int, float] = {}
    offset = 0
    for op in operations:
        if op[0] == "tick":
            ticks[offset] = ticks.get(offset, 0.0) + op[1]
            continue
        part = builder.build(op)
        parts.append(part)
        offset += len(part)
    return b"".join(parts), ticks


def new_server() -> tuple[H2Connection, ScriptedPeer, FakeClock]:
    clock = FakeClock()
    core = H2Connection(CONFIG, client=False, clock=clock)
    core.initiate()
    core.data_to_send()
    return core, ScriptedPeer(core), clock


def new_client() -> tuple[H2Connection, ScriptedPeer, FakeClock]:
    clock = FakeClock()
    core = H2Connection(CONFIG, client=True, clock=clock)
    core.initiate()
    for _ in range(3):
        core.open_stream(REQUEST)
    core.send_data(1, b"q" * 100_000, end_stream=True)  # more than the server's window
    core.data_to_send()
    return core, ScriptedPeer(core), clock


def run_server(operations: list[tuple[Any, ...]], sizes: list[int], valid: bool = False) -> None:
    core, peer, clock = new_server()
    body, ticks = script(peer, operations)
    preface = peer.preface()
    ticks = {offset + len(preface): t for offset, t in ticks.items()}
    feed(core, preface + body, sizes, App(core).handle, ticks, clock, valid)


def run_client(operations: list[tuple[Any, ...]], sizes: list[int], valid: bool = False) -> None:
    core, peer, clock = new_client()
    body, ticks = script(peer, operations)
    settings_frame = peer.settings()
    ticks = {offset + len(settings_frame): t for offset, t in ticks.items()}
    feed(core, settings_frame + body, sizes, App(core).handle, ticks, clock, valid)


@FUZZ
@given(ops, chunks)
def test_server_survives_random_frames(operations: list[tuple[Any, ...]], sizes: list[int]) -> None:
    run_server(operations, sizes)


@FUZZ
@given(ops, chunks)
def test_client_survives_random_frames(operations: list[tuple[Any, ...]], sizes: list[int]) -> None:
    run_client(operations, sizes)


@FUZZ
@given(valid_ops, chunks)
def test_server_well_formed_mixes(operations: list[tuple[Any, ...]], sizes: list[int]) -> None:
    run_server(operations, sizes, valid=True)


@FUZZ
@given(valid_ops, chunks)
def test_client_well_formed_mixes(operations: list[tuple[Any, ...]], sizes: list[int]) -> None:
    run_client(operations, sizes, valid=True)


@FUZZ
@given(st.binary(max_size=600), chunks)
def test_server_survives_random_bytes_after_the_preface(garbage: bytes, sizes: list[int]) -> None:
    core, peer, clock = new_server()
    feed(core, peer.preface() + garbage, sizes, App(core).handle, {}, clock)


@FUZZ
@given(st.binary(max_size=600), chunks)
def test_client_survives_random_bytes_after_settings(garbage: bytes, sizes: list[int]) -> None:
    core, peer, clock = new_client()
    feed(core, peer.settings() + garbage, sizes, App(core).handle, {}, clock)


@FUZZ
@given(st.binary(max_size=100))
def test_server_survives_random_bytes_instead_of_the_preface(garbage: bytes) -> None:
    core, _, clock = new_server()
    feed(core, garbage, [7], App(core).handle, {}, clock)

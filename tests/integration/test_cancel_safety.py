"""Reads are cancel-safe: a ``recv()`` cancelled while a large message is arriving loses
nothing; the next ``recv()`` returns that message whole.

Fault injected: the reader is cancelled (as ``asyncio.wait_for`` does on timeout) after part of
a 2 MiB reply has arrived. The reply is held half-way deterministically: the client's stream
window (1 MiB) stops the server, and the reader's request for more window is held back while
it waits. rpcfw's reader used to have consumed the 5-byte message prefix by then; the next
read failed with INTERNAL "invalid gRPC message flag".
"""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest

import rpcfw
from rpcfw.transport import H2Connection
from tests.echo_service import make_echo_service, wait_until

LIVENESS = 10.0  # generous bound: only a hang trips it
PAYLOAD = bytes(range(256)) * (2 * 4096)  # 2 MiB: twice the client's stream window


async def test_a_recv_cancelled_while_a_large_message_arrives_loses_nothing(
    echo_pb: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = rpcfw.Server([make_echo_service(echo_pb, "s1")])
    await server.start()
    try:
        async with (
            asyncio.timeout(LIVENESS),
            rpcfw.Channel(server.address) as channel,
            echo_pb.EchoStub(channel).bidi(metadata={"x-call": "cancel-safety"}) as stream,
        ):
            await stream.send(echo_pb.EchoRequest(payload=PAYLOAD))
            call = stream._call
            assert call is not None and call._stream is not None
            transport_stream = call._stream
            # the first MiB (the whole stream window) is here; the server waits for window
            await wait_until(lambda: transport_stream.buffered >= 1 << 20, within=LIVENESS)
            assert transport_stream.buffered < len(PAYLOAD)

            held: list[int] = []
            real_expect = H2Connection.expect
            monkeypatch.setattr(H2Connection, "expect", lambda self, sid, size: held.append(size))
            reader = asyncio.ensure_future(stream.recv())
            await wait_until(lambda: bool(held), within=LIVENESS)  # parked mid-message
            reader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reader
            assert transport_stream.buffered >= 1 << 20  # nothing was consumed

            monkeypatch.setattr(H2Connection, "expect", real_expect)
            reply = await stream.recv()
            assert reply is not None and reply.payload == PAYLOAD
            await stream.done_writing()
            assert await stream.recv() is None
            # the stream stayed in step to its end: the server's trailers, with the metadata it
            # echoes there, were read after the reply (not a framing error mid-way)
            assert stream.trailing_metadata is not None
            assert stream.trailing_metadata.get_text("x-call") == "cancel-safety"
    finally:
        await server.stop(grace=0)

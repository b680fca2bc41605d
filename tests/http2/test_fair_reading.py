"""A huge read is processed in slices, with other connections served in between.

Fault injected: one peer writes 20,000 SETTINGS frames (180 KB) at once. The server processes
at most FRAMES_PER_SLICE frames per event-loop iteration and pauses reading that socket until
its backlog is done; every frame is still answered, and a call on another connection made
meanwhile completes.
"""

from __future__ import annotations

from types import ModuleType

from hyperframe.frame import SettingsFrame

from rpcfw.transport import H2Connection
from rpcfw.transport.aio import FRAMES_PER_SLICE
from tests.echo_service import wait_until

from .raw_peer import (
    LIVENESS,
    call_ok,
    channel_unary,
    echo_server,
    raw_peer,
    server_connections,
)

FLOOD = 20_000


def test_core_processes_at_most_max_frames_and_keeps_the_rest() -> None:
    from rpcfw.transport import H2Config
    from rpcfw.transport.frames import CONNECTION_PREFACE, ping_frame, settings_frame

    core = H2Connection(
        H2Config(permit_pings_without_calls=True, min_ping_interval=0), client=False
    )
    core.initiate()
    core.data_to_send()
    data = CONNECTION_PREFACE + settings_frame([]) + ping_frame(b"12345678") * 25
    first = core.receive(data, max_frames=10)
    assert len(first) == 1  # SettingsReceived; the 9 PINGs after it are acked, not events
    assert core.backlog
    assert core.data_to_send().count(b"12345678") == 9
    core.receive(b"", max_frames=10)
    assert core.data_to_send().count(b"12345678") == 10
    assert core.backlog
    core.receive(b"", max_frames=10)
    assert core.data_to_send().count(b"12345678") == 6
    assert not core.backlog


async def test_a_settings_flood_is_answered_in_slices_while_another_connection_is_served(
    echo_pb: ModuleType,
) -> None:
    async with echo_server(echo_pb) as server, raw_peer(server.port) as peer:
        (flooded,) = server_connections(server)
        peer.write(SettingsFrame(0).serialize() * FLOOD)
        await peer.drain()
        await channel_unary(echo_pb, server)  # another connection, served meanwhile
        await wait_until(lambda: flooded.core.control_replies >= FLOOD + 1, within=LIVENESS)
        assert flooded.backlog_slices >= FLOOD // FRAMES_PER_SLICE // 4
        assert flooded.transport is not None and flooded.transport.is_reading()
        # the flooded connection still serves a call after its backlog
        await call_ok(echo_pb, peer, "after the flood")

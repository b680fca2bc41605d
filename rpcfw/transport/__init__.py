"""rpcfw's gRPC HTTP/2 transport: a sans-IO connection core and the asyncio layer on it.

- ``H2Connection`` (connection.py): bytes in -> events, calls -> bytes out; stream states,
  flow control, SETTINGS/PING/GOAWAY, header validation and every limit of ``H2Config``.
- ``Stream`` (stream.py): one stream as the call layer sees it; cancel-safe buffered reads.
- ``AioConnection`` (aio.py): an asyncio Protocol driving the core (also under uvloop).
- ``AnyioConnection`` (anyio_io.py): the same over an anyio byte stream (asyncio and trio).
"""

from .aio import AioConnection, ConnectionOwner
from .config import H2Config
from .connection import H2Connection
from .frames import ErrorCode
from .stream import ConnectionLostError, Stream, StreamResetError
from .stream_state import (
    ConnectionClosedError,
    StreamClosedError,
    StreamLimitError,
    TransportError,
)

__all__ = [
    "AioConnection",
    "ConnectionClosedError",
    "ConnectionLostError",
    "ConnectionOwner",
    "ErrorCode",
    "H2Config",
    "H2Connection",
    "Stream",
    "StreamClosedError",
    "StreamLimitError",
    "StreamResetError",
    "TransportError",
]

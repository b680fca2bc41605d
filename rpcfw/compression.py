"""Message compression per the gRPC compression spec: gzip and deflate (stdlib zlib).

A sender that compresses names the algorithm in ``grpc-encoding`` and sets each compressed
message's flag; every rpcfw peer lists what it accepts in ``grpc-accept-encoding``. Receiving,
the size limit applies to the decompressed message and is enforced while decompressing: a
"zip bomb" costs at most the limit (plus one byte) of memory and its own input of CPU.
"""

from __future__ import annotations

import enum
import zlib

from ._status import Status
from .errors import MessageTooLargeError, RpcError

__all__ = [
    "ACCEPT_ENCODING",
    "Compression",
    "compress",
    "decompress",
    "encoding_name",
    "accepts",
    "is_supported",
]


class Compression(enum.Enum):
    """What to compress messages with (``compression=`` of Channel, calls and Server)."""

    NONE = "identity"
    GZIP = "gzip"
    DEFLATE = "deflate"


_WBITS = {"gzip": 31, "deflate": 15}  # gzip container; zlib container (gRPC's "deflate")
#: the ``grpc-accept-encoding`` value rpcfw sends and answers with
ACCEPT_ENCODING = "identity,deflate,gzip"


def encoding_name(compression: Compression | str | None) -> str | None:
    """The ``grpc-encoding`` token for a user's choice (None for no compression)."""
    if compression is None:
        return None
    name = compression.value if isinstance(compression, Compression) else compression.lower()
    if name == "identity":
        return None
    if name not in _WBITS:
        raise ValueError(f"unsupported compression {compression!r} (use gzip or deflate)")
    return name


def is_supported(encoding: str | None) -> bool:
    """Whether rpcfw can read messages sent with ``grpc-encoding: encoding``."""
    return encoding is None or encoding == "identity" or encoding in _WBITS


def accepts(accept_encoding: str | None, encoding: str) -> bool:
    """Whether a ``grpc-accept-encoding`` header value lists ``encoding``."""
    if not accept_encoding:
        return False
    return encoding in (token.strip() for token in accept_encoding.split(","))


def compress(encoding: str, data: bytes) -> bytes:
    """``data`` compressed with ``encoding`` (``gzip`` or ``deflate``, zlib level 6)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, _WBITS[encoding])
    return compressor.compress(data) + compressor.flush()


def decompress(encoding: str | None, data: bytes, max_length: int) -> bytes:
    """Decompress one message, refusing more than ``max_length`` bytes of output."""
    wbits = _WBITS.get(encoding or "")
    if wbits is None:
        raise RpcError(
            Status.INTERNAL,
            f"compressed message received with grpc-encoding {encoding or 'identity'!r}",
        )
    decompressor = zlib.decompressobj(wbits)
    try:
        out = decompressor.decompress(data, max_length + 1)
    except zlib.error as exc:
        raise RpcError(Status.INTERNAL, f"corrupt {encoding} message: {exc}") from None
    if len(out) > max_length:
        raise MessageTooLargeError(len(out), max_length, "Received decompressed")
    if not decompressor.eof:
        raise RpcError(Status.INTERNAL, f"truncated {encoding} message")
    return out

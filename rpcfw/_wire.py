"""gRPC-over-HTTP/2 wire rules that need no IO: message framing, status and header mapping."""

from __future__ import annotations

import base64
import platform
from collections.abc import Iterable

import anyio.to_thread

from . import __about__
from ._rich_status import DETAILS_KEY, RichStatus
from ._status import Status
from .compression import compress, decompress
from .errors import MessageTooLargeError, RpcError
from .metadata import decode_grpc_message, decode_metadata, encode_grpc_message
from .transport.frames import ErrorCode

__all__ = [
    "DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH",
    "GRPC_CONTENT_TYPE",
    "USER_AGENT",
    "details_trailer",
    "frame_message",
    "frame_message_async",
    "is_grpc_content_type",
    "message_payload",
    "message_payload_async",
    "parse_message_prefix",
    "rst_code_to_status",
    "status_from_headers",
    "status_from_http",
    "trailers_for",
]

GRPC_CONTENT_TYPE = "application/grpc"
DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH = 4 * 1024 * 1024
USER_AGENT = (
    f"grpc-python-rpcfw/{__about__.__version__} "
    f"({platform.system().lower()}; {platform.python_implementation().lower()}/"
    f"{platform.python_version()})"
)
_MAX_WIRE_LENGTH = 2**32 - 1


def frame_message(
    payload: bytes, max_length: int | None = None, encoding: str | None = None
) -> bytes:
    """The 5-byte gRPC prefix followed by the payload, compressed with ``encoding`` (a
    ``grpc-encoding`` token) when given and when that makes it smaller. ``max_length``
    applies to the uncompressed size."""
    length = len(payload)
    if max_length is not None and length > max_length:
        raise MessageTooLargeError(length, max_length, "Sent")
    flag = b"\x00"
    if encoding is not None and length:
        compressed = compress(encoding, payload)
        if len(compressed) < length:  # else as it is (the flag is per message; as C-core)
            payload, length, flag = compressed, len(compressed), b"\x01"
    if length > _MAX_WIRE_LENGTH:
        raise MessageTooLargeError(length, _MAX_WIRE_LENGTH, "Sent")
    return flag + length.to_bytes(4, "big") + payload


def parse_message_prefix(prefix: bytes, max_length: int) -> int:
    """Validate a 5-byte prefix and return the length of the message that follows it (the
    caller decompresses when ``prefix[0]`` is 1: see ``message_payload``)."""
    if len(prefix) != 5:
        raise RpcError(Status.INTERNAL, "truncated gRPC message prefix")
    flag = prefix[0]
    if flag > 1:
        raise RpcError(Status.INTERNAL, f"invalid gRPC message flag {flag}")
    length = int.from_bytes(prefix[1:5], "big")
    if length > max_length:
        raise MessageTooLargeError(length, max_length, "Received")
    return length


#: messages at least this large are compressed / decompressed in a worker thread: zlib
#: releases the GIL, so the event loop goes on serving other calls meanwhile
ZLIB_IN_THREAD_MIN = 32 * 1024


async def frame_message_async(
    payload: bytes, max_length: int | None = None, encoding: str | None = None
) -> bytes:
    """``frame_message``; a large message is compressed in a worker thread."""
    if encoding is None or len(payload) < ZLIB_IN_THREAD_MIN:
        return frame_message(payload, max_length, encoding)
    return await anyio.to_thread.run_sync(frame_message, payload, max_length, encoding)


async def message_payload_async(
    flag: int, data: bytes, encoding: str | None, max_length: int
) -> bytes:
    """``message_payload``; a large compressed message is decompressed in a worker thread."""
    if flag == 0 or len(data) < ZLIB_IN_THREAD_MIN // 8:  # compressed: its output is larger
        return message_payload(flag, data, encoding, max_length)
    return await anyio.to_thread.run_sync(message_payload, flag, data, encoding, max_length)


def message_payload(flag: int, data: bytes, encoding: str | None, max_length: int) -> bytes:
    """A received message's bytes: ``data`` itself, or decompressed with the call's
    ``grpc-encoding`` when its flag says compressed (bounded by ``max_length``)."""
    if flag == 0:
        return data
    return decompress(encoding, data, max_length)


def is_grpc_content_type(value: str | None) -> bool:
    if value is None:
        return False
    base, _, sub = value.partition("+")
    return base == GRPC_CONTENT_TYPE and sub in ("", "proto")


# gRPC's HTTP -> status mapping for responses that are not gRPC at all.
_HTTP_TO_STATUS = {
    "400": Status.INTERNAL,
    "401": Status.UNAUTHENTICATED,
    "403": Status.PERMISSION_DENIED,
    "404": Status.UNIMPLEMENTED,
    "429": Status.UNAVAILABLE,
    "502": Status.UNAVAILABLE,
    "503": Status.UNAVAILABLE,
    "504": Status.UNAVAILABLE,
}


def status_from_http(http_status: str) -> RpcError:
    status = _HTTP_TO_STATUS.get(http_status, Status.UNKNOWN)
    return RpcError(status, f"received HTTP status {http_status}")


def status_from_headers(headers: Iterable[tuple[str, str]]) -> RpcError | None:
    """The call's outcome from trailers (or a trailers-only response): None means OK. An
    error carries the trailing metadata and the rich status (``grpc-status-details-bin``)."""
    code: str | None = None
    message: str | None = None
    details: str | None = None
    for key, value in headers:
        if key == "grpc-status":
            code = value
        elif key == "grpc-message":
            message = decode_grpc_message(value)
        elif key == DETAILS_KEY:
            details = value
    if code is None:
        return RpcError(Status.UNKNOWN, "missing grpc-status in trailers")
    try:
        status = Status(int(code))
    except ValueError:
        return RpcError(Status.UNKNOWN, f"invalid grpc-status {code!r}")
    if status is Status.OK:
        return None
    rich = None if details is None else _rich_status(details)
    return RpcError(status, message, details=rich, trailing_metadata=decode_metadata(headers))


def _rich_status(value: str) -> RichStatus | None:
    """A ``grpc-status-details-bin`` value (base64, padded or not); None when it is corrupt
    (as a corrupt ``-bin`` header is dropped)."""
    try:
        data = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        return RichStatus.FromString(data)
    except ValueError:
        return None


def details_trailer(details: RichStatus) -> tuple[str, str]:
    """The ``grpc-status-details-bin`` trailer for ``details`` (unpadded base64)."""
    return DETAILS_KEY, base64.b64encode(details.SerializeToString()).rstrip(b"=").decode()


# gRPC spec, "Errors": RST_STREAM codes seen by a client, mapped to statuses.
_RST_TO_STATUS = {
    ErrorCode.NO_ERROR: Status.INTERNAL,
    ErrorCode.PROTOCOL_ERROR: Status.INTERNAL,
    ErrorCode.INTERNAL_ERROR: Status.INTERNAL,
    ErrorCode.FLOW_CONTROL_ERROR: Status.INTERNAL,
    ErrorCode.SETTINGS_TIMEOUT: Status.INTERNAL,
    ErrorCode.FRAME_SIZE_ERROR: Status.INTERNAL,
    ErrorCode.REFUSED_STREAM: Status.UNAVAILABLE,
    ErrorCode.CANCEL: Status.CANCELLED,
    ErrorCode.COMPRESSION_ERROR: Status.INTERNAL,
    ErrorCode.CONNECT_ERROR: Status.INTERNAL,
    ErrorCode.ENHANCE_YOUR_CALM: Status.RESOURCE_EXHAUSTED,
    ErrorCode.INADEQUATE_SECURITY: Status.PERMISSION_DENIED,
}


def rst_code_to_status(code: int) -> RpcError:
    try:
        status = _RST_TO_STATUS.get(ErrorCode(code), Status.INTERNAL)
    except ValueError:
        status = Status.INTERNAL
    return RpcError(status, f"stream reset by peer with HTTP/2 error code {code}")


def trailers_for(
    status: Status, message: str | None, metadata: list[tuple[str, str]] | None = None
) -> list[tuple[str, str]]:
    trailers = [("grpc-status", str(status.value))]
    if message:
        trailers.append(("grpc-message", encode_grpc_message(message)))
    if metadata:
        trailers.extend(metadata)
    return trailers

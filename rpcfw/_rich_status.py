"""google.rpc.Status, the rich error model: what a ``grpc-status-details-bin`` trailer carries.

rpcfw does not depend on googleapis-common-protos, so the three fields of google.rpc.Status
(``int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3;``) are
read and written here with the protobuf wire format; the details are protobuf's own ``Any``.
With googleapis-common-protos installed, ``status_pb2.Status.FromString(s.SerializeToString())``
gives the generated message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtobufMessage

__all__ = ["DETAILS_KEY", "RichStatus"]

#: the trailer carrying a serialized google.rpc.Status (base64, as every ``-bin`` header)
DETAILS_KEY = "grpc-status-details-bin"

M = TypeVar("M", bound=ProtobufMessage)


@dataclass(frozen=True, slots=True, repr=False)
class RichStatus:
    """A google.rpc.Status: the status ``code`` (an int, as on the wire), ``message``, and
    ``details``, protobuf ``Any`` messages (``BadRequest``, ``RetryInfo``, ... or your own).

    ``raw`` is the serialized status as received (empty for one built locally)."""

    code: int
    message: str = ""
    details: tuple[any_pb2.Any, ...] = ()
    raw: bytes = field(default=b"", repr=False, compare=False)

    def __repr__(self) -> str:
        kinds = [detail.TypeName() for detail in self.details]
        return f"RichStatus({self.code}, {self.message!r}, details={kinds})"

    @classmethod
    def pack(cls, code: int, message: str, details: Iterable[ProtobufMessage]) -> RichStatus:
        """A status whose details are ``details`` packed into ``Any`` (an ``Any`` is kept)."""
        packed: list[any_pb2.Any] = []
        for detail in details:
            if isinstance(detail, any_pb2.Any):
                packed.append(detail)
            else:
                item = any_pb2.Any()
                item.Pack(detail)
                packed.append(item)
        return cls(code, message, tuple(packed))

    def unpack(self, message_type: type[M]) -> M | None:
        """The first detail of ``message_type`` (a protobuf message class), or None."""
        name = message_type.DESCRIPTOR.full_name
        for detail in self.details:
            if detail.TypeName() == name:
                message = message_type()
                detail.Unpack(message)
                return message
        return None

    def SerializeToString(self) -> bytes:
        """The google.rpc.Status wire form (``raw`` when it was received)."""
        if self.raw:
            return self.raw
        out = bytearray()
        if self.code:
            out += b"\x08" + _varint(self.code & 0xFFFFFFFFFFFFFFFF)  # int32: 10 bytes if < 0
        if self.message:
            _field(out, 2, self.message.encode("utf-8"))
        for detail in self.details:
            _field(out, 3, detail.SerializeToString())
        return bytes(out)

    @classmethod
    def FromString(cls, data: bytes) -> RichStatus:
        """Parse a serialized google.rpc.Status; ``ValueError`` if it is malformed."""
        code, message, details = 0, "", []
        pos, end = 0, len(data)
        while pos < end:
            key, pos = _read_varint(data, pos)
            number, wire_type = key >> 3, key & 7
            if wire_type == 0:
                value, pos = _read_varint(data, pos)
                if number == 1:
                    code = value - (1 << 64) if value >= 1 << 63 else value
            elif wire_type == 2:
                length, pos = _read_varint(data, pos)
                if pos + length > end:
                    raise ValueError("truncated google.rpc.Status")
                chunk, pos = data[pos : pos + length], pos + length
                if number == 2:
                    message = chunk.decode("utf-8")
                elif number == 3:
                    try:
                        details.append(any_pb2.Any.FromString(chunk))
                    except DecodeError as exc:
                        raise ValueError(f"invalid detail in google.rpc.Status: {exc}") from None
            elif wire_type == 1:
                pos += 8
            elif wire_type == 5:
                pos += 4
            else:
                raise ValueError(f"invalid wire type {wire_type} in google.rpc.Status")
        if pos > end:
            raise ValueError("truncated google.rpc.Status")
        return cls(code, message, tuple(details), bytes(data))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(out: bytearray, number: int, payload: bytes) -> None:
    out += _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint in google.rpc.Status")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7

"""JSON <-> dynamic protobuf messages (protobuf's JSON mapping), and a reader of a stream of
JSON documents (newline-delimited or concatenated; a document may span lines)."""

from __future__ import annotations

import base64
import importlib
import json
from collections.abc import Iterator
from typing import Any

from google.protobuf import any_pb2, descriptor, descriptor_pool, json_format
from google.protobuf.message import DecodeError, Message

from .cli_errors import CliError, fail, one_line
from .schema import Schema

__all__ = ["JsonDocuments", "any_to_json", "from_json", "to_json"]


def from_json(schema: Schema, message: descriptor.Descriptor, value: Any, where: str) -> bytes:
    """A decoded JSON document -> the serialized ``message``; ``where`` names it in errors."""
    if not isinstance(value, dict):
        fail(f"{where} must be a JSON object for {message.full_name}, not {type(value).__name__}")
    instance = schema.new_message(message)
    try:
        json_format.ParseDict(value, instance, descriptor_pool=schema.pool)
    except json_format.ParseError as exc:
        fail(f"{where} does not fit {message.full_name}: {one_line(exc)}")
    data: bytes = instance.SerializeToString()
    return data


def to_json(
    schema: Schema,
    message: descriptor.Descriptor,
    data: bytes,
    *,
    emit_defaults: bool = False,
    indent: int | None = None,
) -> str:
    """Serialized ``message`` bytes -> one JSON document (lowerCamelCase names)."""
    instance: Message = schema.new_message(message)
    try:
        instance.ParseFromString(data)
    except DecodeError as exc:
        fail(f"the response is not a valid {message.full_name}: {one_line(exc)}")
    pool: descriptor_pool.DescriptorPool = schema.pool
    value = json_format.MessageToDict(
        instance, always_print_fields_with_no_presence=emit_defaults, descriptor_pool=pool
    )
    return json.dumps(value, indent=indent, ensure_ascii=False)


_WELL_KNOWN = ("duration_pb2", "timestamp_pb2", "wrappers_pb2", "struct_pb2", "empty_pb2",
               "field_mask_pb2")  # fmt: skip


def any_to_json(schema: Schema, value: any_pb2.Any) -> str:
    """A packed message as JSON when its type is in the schema (or a well-known type), else
    its bytes in base64."""
    name = value.TypeName()
    for module in _WELL_KNOWN:  # registers them in the default pool
        importlib.import_module(f"google.protobuf.{module}")
    for pool in (schema.pool, descriptor_pool.Default()):
        try:
            message = pool.FindMessageTypeByName(name)
        except KeyError:
            continue
        try:
            return to_json(schema, message, value.value)
        except CliError:
            break
    return json.dumps({"@type": value.type_url, "value": base64.b64encode(value.value).decode()})


class JsonDocuments:
    """Feed text, get JSON documents as soon as each is complete."""

    def __init__(self, source: str) -> None:
        self._source = source  # "--data" or "stdin": for error messages
        self._buffer = ""
        self._decoder = json.JSONDecoder()
        self.count = 0
        self._line = 1  # line where the buffer starts

    def feed(self, text: str) -> Iterator[Any]:
        self._buffer += text
        while True:
            stripped = self._buffer.lstrip()
            self._line += self._buffer[: len(self._buffer) - len(stripped)].count("\n")
            self._buffer = stripped
            if not stripped:
                return
            try:
                value, end = self._decoder.raw_decode(stripped)
            except json.JSONDecodeError as exc:
                if exc.pos >= len(stripped.rstrip()):  # incomplete so far: wait for more
                    return
                fail(f"{self._where(exc.lineno)} is not valid JSON: {exc.msg}")
            self._line += stripped[:end].count("\n")
            self._buffer = stripped[end:]
            self.count += 1
            yield value

    def close(self) -> None:
        if self._buffer.strip():
            fail(f"{self._where(1)} is not valid JSON: unexpected end of input")

    def where(self) -> str:
        return f"{self._source} message {self.count}"

    def _where(self, lineno: int) -> str:
        return f"{self._source} (line {self._line + lineno - 1})"

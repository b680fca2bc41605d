"""Where request messages come from: ``-d JSON`` text, ``-d @`` (stdin) or ``-d @FILE``, read
as a stream of JSON documents and encoded one by one as the call asks for them (so a bidi
call sends each line of stdin as it is typed)."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TextIO

from google.protobuf import descriptor

from .cli_errors import fail
from .json_messages import JsonDocuments, from_json
from .schema import Schema

__all__ = ["RequestSource"]


def _read_lines(stream: TextIO, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str]) -> None:
    """In a daemon thread (a read of stdin cannot be cancelled): every line, then ""."""
    try:
        for line in stream:
            loop.call_soon_threadsafe(queue.put_nowait, line)
    finally:
        loop.call_soon_threadsafe(queue.put_nowait, "")


class RequestSource:
    """The requests of one call as serialized ``message`` bytes."""

    def __init__(self, data: str | None, schema: Schema, message: descriptor.Descriptor) -> None:
        self._data = data
        self._schema = schema
        self._message = message
        if data is None or not data.startswith("@"):
            self.name = "--data"
        else:
            self.name = "stdin" if data == "@" else data[1:]

    async def _chunks(self) -> AsyncIterator[str]:
        data = self._data
        if data is None:
            return
        if not data.startswith("@"):
            yield data
            return
        if data != "@":
            try:
                yield await asyncio.to_thread(Path(data[1:]).read_text, encoding="utf-8")
            except OSError as exc:
                fail(f"cannot read request data {data[1:]}: {exc.strerror}")
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str] = asyncio.Queue()
        threading.Thread(
            target=_read_lines, args=(sys.stdin, loop, queue), daemon=True, name="stdin"
        ).start()
        while line := await queue.get():
            yield line

    async def messages(self) -> AsyncIterator[bytes]:
        """Each request, encoded, as soon as its JSON document is complete."""
        documents = JsonDocuments(self.name)
        async for chunk in self._chunks():
            for value in documents.feed(chunk):
                yield from_json(self._schema, self._message, value, documents.where())
        documents.close()

    async def one(self) -> bytes:
        """The one request of a unary or server-streaming call (``{}`` without ``-d``)."""
        if self._data is None:
            return from_json(self._schema, self._message, {}, "the default request")
        found = [message async for message in self.messages()]
        if len(found) != 1:
            fail(f"this method takes exactly one request message; {self.name} has {len(found)}")
        return found[0]

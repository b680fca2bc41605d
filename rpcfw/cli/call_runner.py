"""One call of any kind through rpcfw's Channel, with bytes in and out: requests from a
``RequestSource``, each reply written as one JSON document, and how the call ended."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf import any_pb2, descriptor

from .._method import MethodSpec
from .._status import Status
from ..client import BidiStream, Channel
from ..client._call_objects import CallObject
from ..errors import RpcError
from ..metadata import Metadata, MetadataValue
from .cli_errors import CliError
from .raw_method import RawMessage, raw_spec
from .request_source import RequestSource

__all__ = ["CallOutcome", "run_call"]


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """How a call ended: its status, message, metadata and rich-status details."""

    status: Status
    message: str | None
    initial_metadata: Metadata | None
    trailing_metadata: Metadata | None
    details: tuple[any_pb2.Any, ...] = ()  # the rich status (grpc-status-details-bin)


def _outcome(call: CallObject[RawMessage], error: RpcError | None) -> CallOutcome:
    if error is None:
        return CallOutcome(Status.OK, None, call.initial_metadata, call.trailing_metadata)
    return CallOutcome(
        error.status,
        error.message,
        error.initial_metadata or call.initial_metadata,
        error.trailing_metadata or call.trailing_metadata,
        error.details.details if error.details is not None else (),
    )


async def _bidi(
    call: BidiStream[RawMessage, RawMessage],
    requests: RequestSource,
    emit: Callable[[bytes], None],
) -> None:
    async def send_all() -> None:
        try:
            async for data in requests.messages():
                await call.send(RawMessage(data))
            await call.done_writing()
        except RpcError:
            return  # the call has ended: the reader reports how
        except CliError:
            call.cancel()  # bad request data: end the call, report the data
            raise

    sender = asyncio.ensure_future(send_all())
    error: RpcError | None = None
    try:
        async for reply in call:
            emit(reply.data)
    except RpcError as exc:
        error = exc
    finally:
        if not sender.done():
            sender.cancel()
        await asyncio.wait([sender])
    if not sender.cancelled() and (failure := sender.exception()) is not None:
        raise failure
    if error is not None:
        raise error


async def run_call(
    channel: Channel,
    method: descriptor.MethodDescriptor,
    requests: RequestSource,
    emit: Callable[[bytes], None],
    *,
    call_timeout: float | None,
    metadata: list[tuple[str, MetadataValue]],
) -> CallOutcome:
    """Run the call; every reply goes to ``emit`` as it arrives. An RpcError is the outcome;
    bad request data raises ``CliError`` (the call is cancelled first)."""
    spec: MethodSpec[RawMessage, RawMessage] = raw_spec(method)
    kind = spec.cardinality
    call: CallObject[RawMessage]
    if not kind.client_streaming:
        request = RawMessage(await requests.one())
        if kind.server_streaming:
            stream = channel.server_stream_call(
                spec, request, timeout=call_timeout, metadata=metadata
            )
            call = stream
            try:
                async with stream:
                    async for reply in stream:
                        emit(reply.data)
            except RpcError as exc:
                return _outcome(call, exc)
            return _outcome(call, None)
        unary = channel.unary_call(spec, request, timeout=call_timeout, metadata=metadata)
        call = unary
        try:
            async with unary:
                emit((await unary).data)
        except RpcError as exc:
            return _outcome(call, exc)
        return _outcome(call, None)
    if kind.server_streaming:
        bidi = channel.stream_stream(spec, timeout=call_timeout, metadata=metadata)
        call = bidi
        try:
            async with bidi:
                await _bidi(bidi, requests, emit)
        except RpcError as exc:
            return _outcome(call, exc)
        return _outcome(call, None)
    client = channel.client_stream_call(spec, timeout=call_timeout, metadata=metadata)
    call = client
    try:
        async with client:
            try:
                async for data in requests.messages():
                    await client.send(RawMessage(data))
            except CliError:
                client.cancel()
                raise
            emit((await client.response()).data)
    except RpcError as exc:
        return _outcome(call, exc)
    return _outcome(call, None)

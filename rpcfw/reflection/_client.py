"""The client side: ask any gRPC server's reflection service (v1, else v1alpha)."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from google.protobuf import descriptor_pb2, descriptor_pool, message

from .._status import Status
from ..errors import RpcError
from ._pool import build_pool
from ._versions import convert, v1, v1alpha

if TYPE_CHECKING:
    from typing import Unpack

    from .._method import CallOptions
    from ..client import BidiStream, Channel

__all__ = ["ReflectionClient", "ReflectionError"]

FileDescriptorProto = descriptor_pb2.FileDescriptorProto
T = TypeVar("T")


class ReflectionError(RpcError):
    """The reflection service answered a question with an error response (``status``:
    NOT_FOUND for an unknown symbol, file or extension), not a failed call."""


class _Session:
    """One ``ServerReflectionInfo`` call: questions and answers in v1's messages, whichever
    version the call speaks."""

    def __init__(
        self,
        v1_stream: BidiStream[v1.ServerReflectionRequest, v1.ServerReflectionResponse] | None,
        alpha_stream: (
            BidiStream[v1alpha.ServerReflectionRequest, v1alpha.ServerReflectionResponse] | None
        ),
    ) -> None:
        self._v1 = v1_stream
        self._alpha = alpha_stream
        self._known: dict[str, FileDescriptorProto] = {}  # every file received on this call

    async def ask(self, request: v1.ServerReflectionRequest) -> v1.ServerReflectionResponse:
        """Send one question and read its answer; an error response raises ReflectionError."""
        response: v1.ServerReflectionResponse | None
        if self._v1 is not None:
            await self._v1.send(request)
            response = await self._v1.recv()
        else:
            assert self._alpha is not None
            await self._alpha.send(convert(request, v1alpha.ServerReflectionRequest))
            answer = await self._alpha.recv()
            response = None if answer is None else convert(answer, v1.ServerReflectionResponse)
        if response is None:
            raise RpcError(Status.UNKNOWN, "the reflection call ended without an answer")
        if response.WhichOneof("message_response") == "error_response":
            error = response.error_response
            try:
                status = Status(error.error_code)
            except ValueError:
                status = Status.UNKNOWN
            raise ReflectionError(status, error.error_message or None)
        return response

    async def finish(self) -> None:
        """Half-close and read the call's end (OK), so the server sees a completed call."""
        stream = self._v1 if self._v1 is not None else self._alpha
        assert stream is not None
        await stream.done_writing()
        while await stream.recv() is not None:
            pass

    async def files(self, request: v1.ServerReflectionRequest) -> list[FileDescriptorProto]:
        """The files answering ``request`` (the one asked for first), then their imports,
        transitively. An import neither in the answer nor received before on this call (a
        server may skip those) is asked for by name."""
        queue = deque(self._take(await self.ask(request)))
        order: dict[str, None] = {}  # insertion-ordered set
        while queue:
            name = queue.popleft()
            if name in order:
                continue
            if name not in self._known:
                self._take(await self.ask(v1.ServerReflectionRequest(file_by_filename=name)))
                if name not in self._known:
                    raise RpcError(Status.INTERNAL, f"reflection answered {name} with another file")
            order[name] = None
            queue.extend(self._known[name].dependency)
        return [self._known[name] for name in order]

    def _take(self, response: v1.ServerReflectionResponse) -> list[str]:
        """Keep the files of ``response``; their names, in order."""
        if response.WhichOneof("message_response") != "file_descriptor_response":
            raise RpcError(Status.INTERNAL, "reflection answered without file descriptors")
        names = []
        for data in response.file_descriptor_response.file_descriptor_proto:
            try:
                file = FileDescriptorProto.FromString(data)
            except message.DecodeError:
                raise RpcError(Status.INTERNAL, "reflection sent a corrupt descriptor") from None
            self._known.setdefault(file.name, file)
            names.append(file.name)
        return names


class ReflectionClient:
    """Server reflection from the client side, over any channel rpcfw calls on.

    Each question opens one ``ServerReflectionInfo`` call (``options``: ``timeout``,
    ``metadata``... for each of them). The first call tries ``grpc.reflection.v1`` and, if
    the server answers UNIMPLEMENTED, ``grpc.reflection.v1alpha``; the version that worked
    is kept for the next calls.

    Errors: :class:`ReflectionError` (an ``RpcError``) when the server does not know what
    was asked (``status`` NOT_FOUND), ``RpcError`` when a call fails (UNIMPLEMENTED when
    the server has no reflection service at all).
    """

    def __init__(self, channel: Channel, **options: Unpack[CallOptions]) -> None:
        self._channel = channel
        self._options = options
        self._alpha: bool | None = None  # which version the server speaks, once known

    @property
    def version(self) -> str | None:
        """``"v1"`` or ``"v1alpha"`` once a call succeeded, else None."""
        return None if self._alpha is None else ("v1alpha" if self._alpha else "v1")

    async def list_services(self) -> list[str]:
        """The full names of the services the server lists."""
        return await self._run(_list_services)

    async def file_containing_symbol(self, symbol: str) -> list[FileDescriptorProto]:
        """The file declaring ``symbol`` (``pkg.Service``, ``pkg.Service.Method``,
        ``pkg.Message``...) first, then every file it imports, transitively."""
        request = v1.ServerReflectionRequest(file_containing_symbol=symbol)
        return await self._run(lambda session: session.files(request))

    async def file_by_filename(self, name: str) -> list[FileDescriptorProto]:
        """The file named ``name`` (``echo/v1/echo.proto``) first, then its imports."""
        request = v1.ServerReflectionRequest(file_by_filename=name)
        return await self._run(lambda session: session.files(request))

    async def file_containing_extension(
        self, containing_type: str, number: int
    ) -> list[FileDescriptorProto]:
        """The file declaring extension ``number`` of ``containing_type``, then its imports."""
        extension = v1.ExtensionRequest(containing_type=containing_type, extension_number=number)
        request = v1.ServerReflectionRequest(file_containing_extension=extension)
        return await self._run(lambda session: session.files(request))

    async def all_extension_numbers_of_type(self, type_name: str) -> list[int]:
        """The numbers of the extensions of message ``type_name`` the server knows."""
        request = v1.ServerReflectionRequest(all_extension_numbers_of_type=type_name)

        async def numbers(session: _Session) -> list[int]:
            response = await session.ask(request)
            return list(response.all_extension_numbers_response.extension_number)

        return await self._run(numbers)

    async def descriptor_pool(
        self, symbols: Iterable[str] | None = None
    ) -> descriptor_pool.DescriptorPool:
        """A new ``DescriptorPool`` with the files declaring ``symbols`` and their imports.

        Without ``symbols``: every service :meth:`list_services` names (those the server
        cannot describe, NOT_FOUND, are left out). All questions share one call.
        """
        wanted = None if symbols is None else list(symbols)

        async def collect(session: _Session) -> list[FileDescriptorProto]:
            names = await _list_services(session) if wanted is None else wanted
            files: list[FileDescriptorProto] = []
            for symbol in names:
                request = v1.ServerReflectionRequest(file_containing_symbol=symbol)
                try:
                    files += await session.files(request)
                except ReflectionError as exc:
                    if wanted is not None or exc.status is not Status.NOT_FOUND:
                        raise
            return files

        return build_pool(await self._run(collect))

    async def _run(self, work: Callable[[_Session], Awaitable[T]]) -> T:
        """``work`` on a new reflection call. Until the version is known: on v1, then on
        v1alpha if the server answered UNIMPLEMENTED (an error response is an answer)."""
        if self._alpha is None:
            try:
                result = await self._on_call(False, work)
            except ReflectionError:
                self._alpha = False  # an error response: v1 is there
                raise
            except RpcError as exc:
                if exc.status is not Status.UNIMPLEMENTED:
                    raise
            else:
                self._alpha = False
                return result
            result = await self._on_call(True, work)
            self._alpha = True
            return result
        return await self._on_call(self._alpha, work)

    async def _on_call(self, alpha: bool, work: Callable[[_Session], Awaitable[T]]) -> T:
        if alpha:
            stub = v1alpha.ServerReflectionStub(self._channel)
            alpha_stream = stub.server_reflection_info(**self._options)
            async with alpha_stream:
                session = _Session(None, alpha_stream)
                result = await work(session)
                await session.finish()
        else:
            stream = v1.ServerReflectionStub(self._channel).server_reflection_info(**self._options)
            async with stream:
                session = _Session(stream, None)
                result = await work(session)
                await session.finish()
        return result


async def _list_services(session: _Session) -> list[str]:
    response = await session.ask(v1.ServerReflectionRequest(list_services=""))
    return [service.name for service in response.list_services_response.service]

"""The server side: ``grpc.reflection.v1.ServerReflection`` and its v1alpha twin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

from .._method import ServiceBase
from .._status import Status
from ._index import DescriptorIndex
from ._versions import convert, v1, v1alpha

if TYPE_CHECKING:
    from ..server import CallContext

__all__ = ["ReflectionService", "ReflectionServiceV1Alpha", "answer", "reflection_services"]


def answer(
    index: DescriptorIndex, request: v1.ServerReflectionRequest
) -> v1.ServerReflectionResponse:
    """The response to one reflection request (an error response for what ``index`` does not
    know: NOT_FOUND, or INVALID_ARGUMENT for a request without a question)."""
    response = v1.ServerReflectionResponse(valid_host=request.host, original_request=request)
    kind = request.WhichOneof("message_request")
    files: list[bytes] | None = None
    if kind == "list_services":
        services = [v1.ServiceResponse(name=name) for name in index.services]
        response.list_services_response.service.extend(services)
        return response
    if kind == "all_extension_numbers_of_type":
        numbers = index.extension_numbers(request.all_extension_numbers_of_type)
        if numbers is None:
            return _error(response, Status.NOT_FOUND, "type not found")
        found = response.all_extension_numbers_response
        found.base_type_name = request.all_extension_numbers_of_type.lstrip(".")
        found.extension_number.extend(numbers)
        return response
    if kind == "file_by_filename":
        files, what = index.file_by_name(request.file_by_filename), "file"
    elif kind == "file_containing_symbol":
        files, what = index.file_containing_symbol(request.file_containing_symbol), "symbol"
    elif kind == "file_containing_extension":
        extension = request.file_containing_extension
        files = index.file_containing_extension(
            extension.containing_type, extension.extension_number
        )
        what = "extension"
    else:
        return _error(response, Status.INVALID_ARGUMENT, "no request in ServerReflectionRequest")
    if files is None:
        return _error(response, Status.NOT_FOUND, f"{what} not found")
    response.file_descriptor_response.file_descriptor_proto.extend(files)
    return response


def _error(
    response: v1.ServerReflectionResponse, status: Status, message: str
) -> v1.ServerReflectionResponse:
    response.error_response.error_code = status.value
    response.error_response.error_message = message
    return response


class ReflectionService(v1.ServerReflectionBase):
    """``grpc.reflection.v1.ServerReflection`` over a :class:`DescriptorIndex`: one answer per
    request, in order, until the client half-closes."""

    def __init__(self, index: DescriptorIndex) -> None:
        self.index = index

    async def server_reflection_info(
        self, requests: AsyncIterator[v1.ServerReflectionRequest], context: CallContext
    ) -> AsyncIterator[v1.ServerReflectionResponse]:
        async for request in requests:
            yield answer(self.index, request)


class ReflectionServiceV1Alpha(v1alpha.ServerReflectionBase):
    """``grpc.reflection.v1alpha.ServerReflection``: the same answers in v1alpha's messages
    (what grpcio-reflection's client and older tools ask)."""

    def __init__(self, index: DescriptorIndex) -> None:
        self.index = index

    async def server_reflection_info(
        self, requests: AsyncIterator[v1alpha.ServerReflectionRequest], context: CallContext
    ) -> AsyncIterator[v1alpha.ServerReflectionResponse]:
        async for request in requests:
            response = answer(self.index, convert(request, v1.ServerReflectionRequest))
            yield convert(response, v1alpha.ServerReflectionResponse)


def reflection_services(
    services: Iterable[ServiceBase],
) -> tuple[ReflectionService, ReflectionServiceV1Alpha]:
    """Both reflection services, describing ``services`` and themselves (what
    ``Server(..., reflection=True)`` adds; pass ``services`` including health if served)."""
    served = [type(service) for service in services]
    index = DescriptorIndex([*served, ReflectionService, ReflectionServiceV1Alpha])
    return ReflectionService(index), ReflectionServiceV1Alpha(index)

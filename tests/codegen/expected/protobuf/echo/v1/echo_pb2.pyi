from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class EchoRequest(_message.Message):
    __slots__ = ("message", "payload", "count", "delay_ms")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    message: str
    payload: bytes
    count: int
    delay_ms: int
    def __init__(self, message: _Optional[str] = ..., payload: _Optional[bytes] = ..., count: _Optional[int] = ..., delay_ms: _Optional[int] = ...) -> None: ...

class EchoResponse(_message.Message):
    __slots__ = ("message", "payload", "index", "server_id")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    message: str
    payload: bytes
    index: int
    server_id: str
    def __init__(self, message: _Optional[str] = ..., payload: _Optional[bytes] = ..., index: _Optional[int] = ..., server_id: _Optional[str] = ...) -> None: ...

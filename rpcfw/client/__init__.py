"""The rpcfw client: channels and call objects."""

from ._call_objects import ClientStreamCall, ServerStreamCall, UnaryCall
from ._capture import CapturedCall, capture_call
from ._streams import BidiStream
from .channel import Channel

__all__ = (
    "BidiStream",
    "CapturedCall",
    "Channel",
    "ClientStreamCall",
    "ServerStreamCall",
    "UnaryCall",
    "capture_call",
)

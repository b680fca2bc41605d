"""The rpcfw client: channels and streaming call objects."""

from ._streams import BidiStream
from .channel import Channel

__all__ = ("BidiStream", "Channel")

"""The rpcfw server."""

from ._context import CallContext
from .server import Server

__all__ = ("CallContext", "Server")

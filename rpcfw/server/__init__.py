"""The rpcfw server."""

from ._context import CallContext
from .server import Server, ServerStats

__all__ = ("CallContext", "Server", "ServerStats")

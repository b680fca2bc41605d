"""``unix:path``, ``unix:///abs/path``, ``unix-abstract:name``: one Unix domain socket.

The endpoint's host is the socket written as a target (``unix:/abs/path``,
``unix-abstract:name``; port 0): the channel's connections dial it with
``create_unix_connection`` (asyncio) or ``anyio.connect_unix`` (other backends). The
``:authority`` of calls is ``localhost``, as gRPC sends for unix targets.
"""

from __future__ import annotations

from .._unix import UnixAddress
from ..endpoint import Endpoint
from .base import Resolver, ResolverListener
from .target import Target

__all__ = ["UnixResolver"]


class UnixResolver(Resolver):
    """Resolver for ``unix:path``, ``unix:///abs/path`` and ``unix-abstract:name``: one Unix domain
    socket endpoint."""

    def __init__(self, target: Target, listener: ResolverListener) -> None:
        super().__init__(target, listener)
        if target.authority or not target.endpoint:
            raise ValueError(f"invalid target {target.raw!r}: expected unix:PATH or unix:///PATH")
        address = UnixAddress(target.endpoint, abstract=target.scheme == "unix-abstract")
        self.endpoint = Endpoint(str(address), 0)

    def start(self) -> None:
        self.listener([self.endpoint])

    @property
    def authority(self) -> str:
        return "localhost"

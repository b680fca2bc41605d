"""Shims that make etcd3-py 0.1.6 (last released 2019) usable from rpcfw.

Each shim says why it exists; ``tests/etcd/test_compat.py`` fails loudly if its target moves.
Nothing outside ``rpcfw/etcd/`` imports this module.

Not needed: the aiohttp >= 3.10.6 shim for ``etcd3.aio_client._RequestContextManager`` (its
``isinstance`` check against a subscripted generic). That check lives only in etcd3-py's
``ModelizedStreamResponse``, which rpcfw does not use: its stream decoder loses messages (see
``rpcfw/etcd/client.py``), so rpcfw reads streams itself from ``call_rpc(..., raw=True)``.
"""

from __future__ import annotations

import etcd3.aio_client
import semantic_version

__all__ = ["DEFAULT_SERVER_VERSION", "NoProbeAioClient"]

# etcd3-py picks its API prefix (/v3alpha, /v3beta, /v3) and its swagger spec from the server
# version. etcd 3.4 (Debian bookworm's etcd-server) serves /v3; 3.5 serves /v3 too.
DEFAULT_SERVER_VERSION = "3.4.0"


class NoProbeAioClient(etcd3.aio_client.AioClient):  # type: ignore[misc]  # untyped base
    """etcd3-py's AioClient without the blocking version probe in ``__init__``.

    Why: ``BaseClient.__init__`` calls ``_retrieve_version()``, a *blocking* ``requests.get``
    of ``/version`` (0.3 s timeout) that would stall the event loop, and when etcd is down it
    warns (an error under ``-W error``) and then fails with ``AttributeError`` because
    ``server_version_sem`` was never set. rpcfw connects lazily and must construct clients
    while etcd is down, so the version is given (``server_version``) instead of probed.
    """

    def _retrieve_version(self) -> None:
        # Same attributes the original sets after a successful probe.
        self.server_version_sem = semantic_version.Version(str(self.server_version))
        self.cluster_version_sem = semantic_version.Version(str(self.cluster_version))

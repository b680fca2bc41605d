"""Run an Echo server in its own process (for faults that kill or signal a process).

Usage: python -m tests.integration.echo_server_main ROOT BACKEND SERVER_ID [PORT [ETCD [GRACE]]]
Prints ``PORT <n>`` once listening (PORT 0 or none: any free port). With ETCD (host:port list)
it registers there with a 2 s lease. It runs as ``Server.run()`` does: SIGTERM or SIGINT drains
it with GRACE seconds (default 10), a second signal stops it at once; it then exits with 0.
``rpcfw.server`` logs at INFO on stderr (the signal received, the drain, the stop).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys

import rpcfw
from tests.echo_service import make_echo_service


def _print_port(server: rpcfw.Server) -> None:
    print(f"PORT {server.port}", flush=True)


async def main(
    root: str, backend: str, server_id: str, port: str = "0", etcd: str = "", grace: str = "10"
) -> None:
    logging.basicConfig(stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    logging.getLogger("rpcfw.server").setLevel(logging.INFO)
    sys.path.insert(0, root)
    mod = importlib.import_module(f"gen_{backend}.echo.v1.echo_rpcfw")
    registry = None
    if etcd:
        from rpcfw.registry import etcd_registrar

        registry = etcd_registrar(etcd, ttl=2, timeout=0.5)
    server = rpcfw.Server([make_echo_service(mod, server_id)], registry=registry)
    await server.run("127.0.0.1", int(port), grace=float(grace), on_started=_print_port)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))

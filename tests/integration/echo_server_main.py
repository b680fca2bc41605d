"""Run an Echo server in its own process (for faults that kill a process).

Usage: python -m tests.integration.echo_server_main GENERATED_ROOT BACKEND SERVER_ID [PORT [ETCD]]
Prints ``PORT <n>`` once listening (PORT 0 or none: any free port). With ETCD (host:port list)
it registers there with a 2 s lease.
"""

from __future__ import annotations

import asyncio
import importlib
import sys

import rpcfw
from tests.echo_service import make_echo_service


async def main(root: str, backend: str, server_id: str, port: str = "0", etcd: str = "") -> None:
    sys.path.insert(0, root)
    mod = importlib.import_module(f"gen_{backend}.echo.v1.echo_rpcfw")
    registry = None
    if etcd:
        from rpcfw.registry import etcd_registrar

        registry = etcd_registrar(etcd, ttl=2, timeout=0.5)
    server = rpcfw.Server([make_echo_service(mod, server_id)], registry=registry)
    await server.start("127.0.0.1", int(port))
    print(f"PORT {server.port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))

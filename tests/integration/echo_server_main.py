"""Run an Echo server in its own process (for faults that kill a process).

Usage: python -m tests.integration.echo_server_main GENERATED_ROOT BACKEND SERVER_ID [PORT]
Prints ``PORT <n>`` once listening (PORT 0 or none: any free port).
"""

from __future__ import annotations

import asyncio
import importlib
import sys

import rpcfw
from tests.echo_service import make_echo_service


async def main(root: str, backend: str, server_id: str, port: str = "0") -> None:
    sys.path.insert(0, root)
    mod = importlib.import_module(f"gen_{backend}.echo.v1.echo_rpcfw")
    server = rpcfw.Server([make_echo_service(mod, server_id)])
    await server.start("127.0.0.1", int(port))
    print(f"PORT {server.port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))

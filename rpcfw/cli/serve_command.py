"""``rpcfw serve MODULE:ATTRIBUTE``: serve service objects from an import path until SIGTERM
or SIGINT, then drain (deregister, GOAWAY, finish calls within --grace) and exit 0.

Exit codes: 0 stopped by a signal after the drain; 2 bad option; 3 the import path (cannot
import, no such attribute, not services, the factory failed); 4 cannot listen (address in
use, permission). An unreachable registry is logged and retried in the background while the
server serves (rpcfw.registry's behaviour)."""

from __future__ import annotations

import asyncio
import errno
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..server import Server
from ..tls import ServerTLS
from .cli_errors import CliError, extra_hint, fail, one_line, report
from .serve_loader import EXIT_BAD_APP, load_services

__all__ = ["EXIT_LISTEN", "serve"]

EXIT_USAGE = 2
EXIT_LISTEN = 4


def _registrar(url: str | None) -> Any:
    if url is None:
        return None
    endpoints = url.removeprefix("etcd://").strip("/")
    if not url.startswith("etcd://") or not endpoints:
        fail(f"--registry {url!r}: expected etcd://HOST:PORT[,HOST:PORT...]", EXIT_USAGE)
    try:
        from ..registry import etcd_registrar

        return etcd_registrar(endpoints)
    except ModuleNotFoundError as exc:
        fail(extra_hint(exc), EXIT_USAGE)
    except ValueError as exc:
        fail(f"--registry {url!r}: {one_line(exc)}", EXIT_USAGE)


def _server_tls(cert: Path | None, key: Path | None, client_ca: Path | None) -> ServerTLS | None:
    if cert is None and key is None:
        if client_ca is not None:
            fail("--client-ca needs --cert and --key", EXIT_USAGE)
        return None
    if cert is None or key is None:
        fail("--cert and --key go together", EXIT_USAGE)
    try:
        return ServerTLS(cert, key, client_ca=client_ca, require_client_cert=client_ca is not None)
    except (OSError, ValueError) as exc:
        fail(f"TLS files: {one_line(exc)}", EXIT_USAGE)


async def _serve(
    app: str,
    host: str,
    port: int,
    grace: float,
    health: bool,
    reflection: bool,
    max_concurrent_streams: int,
    registry: str | None,
    tls: ServerTLS | None,
) -> None:
    services = await load_services(app)
    registrar = _registrar(registry)
    try:
        server = Server(
            services,
            health=health,
            reflection=reflection,
            registry=registrar,
            max_concurrent_streams=max_concurrent_streams,
        )
    except (TypeError, ValueError) as exc:
        fail(f"{app}: {one_line(exc)}", EXIT_BAD_APP)

    extras = [name for name, on in (("health", server.health), ("reflection", reflection)) if on]
    also = f" (with {', '.join(extras)})" if extras else ""

    def started(server: Server) -> None:
        names = ", ".join(server.services)
        print(f"rpcfw serve: serving {names}{also} on {server.address}", file=sys.stderr,
              flush=True)  # fmt: skip

    try:
        await server.run(host, port, grace=grace, on_started=started, tls=tls)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(f"cannot listen on {host}:{port}: address already in use", EXIT_LISTEN)
        fail(f"cannot listen on {host}:{port}: {exc.strerror or one_line(exc)}", EXIT_LISTEN)
    print("rpcfw serve: stopped", file=sys.stderr, flush=True)


def serve(
    app: Annotated[
        str,
        typer.Argument(
            help="MODULE:ATTRIBUTE: a service object, a list of them, or a factory (sync or "
            "async) returning them, e.g. myapp.main:services.",
            metavar="MODULE:ATTRIBUTE",
            show_default=False,
        ),
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on (or unix:/path).")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option("-p", "--port", min=0, max=65535, help="Port (0: any free port).")
    ] = 50051,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            min=0.0,
            metavar="SECONDS",
            help="On SIGTERM/SIGINT, let calls finish for up to this long.",
        ),
    ] = 10.0,
    health: Annotated[
        bool, typer.Option("--health/--no-health", help="Serve grpc.health.v1.Health.")
    ] = True,
    reflection: Annotated[
        bool, typer.Option("--reflection", help="Serve gRPC server reflection (v1 and v1alpha).")
    ] = False,
    max_concurrent_streams: Annotated[
        int,
        typer.Option(
            "--max-concurrent-streams", min=1, help="Calls served at once per connection."
        ),
    ] = 100,
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            help="Register in etcd while serving: etcd://HOST:PORT[,HOST:PORT...] (needs the "
            "etcd extra).",
            metavar="URL",
            show_default=False,
        ),
    ] = None,
    cert: Annotated[
        Path | None,
        typer.Option(
            "--cert",
            help="Serve TLS with this certificate chain (PEM).",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key", help="Private key of --cert (PEM).", metavar="FILE", show_default=False
        ),
    ] = None,
    client_ca: Annotated[
        Path | None,
        typer.Option(
            "--client-ca",
            help="Require client certificates from this CA (mTLS).",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = "info",
) -> None:
    """Serve MODULE:ATTRIBUTE until SIGTERM or SIGINT, then drain gracefully and exit 0.

    Logs where it listens. Exit codes: 3 bad import path, 4 cannot listen (address in use), 2
    bad option.
    """
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        report(
            "serve", CliError(f"--log-level {log_level!r}: use debug, info, warning or error", 2)
        )
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        tls = _server_tls(cert, key, client_ca)
        asyncio.run(
            _serve(app, host, port, grace, health, reflection, max_concurrent_streams, registry,
                   tls)
        )  # fmt: skip
    except CliError as exc:
        report("serve", exc)

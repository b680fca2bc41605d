"""The ``rpcfw`` command line (typer): gen, demo, bench, registry, call, list, describe,
serve."""

from __future__ import annotations

from typing import Annotated

import typer

from .demo_command import demo

__all__ = ("app", "main")

app = typer.Typer(
    name="rpcfw",
    help="rpcfw: typed async RPC for Python, wire-compatible with gRPC.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from ..__about__ import __version__

        typer.echo(f"rpcfw {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """rpcfw: typed async RPC for Python, wire-compatible with gRPC."""


def _register() -> None:
    from .bench_command import bench
    from .call_command import call
    from .gen_command import gen
    from .list_command import describe, list_services

    app.command("gen", help="Generate messages and typed rpcfw stubs from .proto files.")(gen)
    app.command(
        "demo", help="Generate stubs from proto/, start servers and call every method kind."
    )(demo)
    app.command("bench", help="Load-test one method of a target: throughput, latency percentiles.")(
        bench
    )
    app.command("call", help="Call one method with JSON request(s) (grpcurl-like).")(call)
    app.command("list", help="List a server's services, or one service's methods.")(list_services)
    app.command("describe", help="Show a service, method, message or enum as .proto text.")(
        describe
    )
    from .serve_command import serve

    app.command("serve", help="Serve service objects from an import path (MODULE:ATTRIBUTE).")(
        serve
    )
    from .registry_command import registry_app

    app.add_typer(registry_app, name="registry")


_register()


def main() -> None:
    """The ``rpcfw`` console script: run the app, bad input as one line and an exit code."""
    from .entry import run

    run(app)

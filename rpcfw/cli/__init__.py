"""The ``rpcfw`` command line (typer): gen, demo, bench, registry."""

from __future__ import annotations

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


def _register() -> None:
    from .bench_command import bench
    from .gen_command import gen

    app.command("gen", help="Generate messages and typed rpcfw stubs from .proto files.")(gen)
    app.command(
        "demo", help="Generate stubs from proto/, start servers and call every method kind."
    )(demo)
    app.command("bench", help="Load-test one method of a target: throughput, latency percentiles.")(
        bench
    )
    from .registry_command import registry_app

    app.add_typer(registry_app, name="registry")


_register()


def main() -> None:
    app()

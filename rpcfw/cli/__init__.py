"""The ``rpcfw`` command line (typer): gen, demo."""

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
    from .gen_command import gen

    app.command("gen", help="Generate messages and typed rpcfw stubs from .proto files.")(gen)
    app.command(
        "demo", help="Generate stubs from proto/, start servers and call every method kind."
    )(demo)


_register()


def main() -> None:
    app()

"""One error type for every CLI command: a one-line message and an exit code, no traceback."""

from __future__ import annotations

from typing import NoReturn

import typer

__all__ = ["EXIT_INPUT", "CliError", "extra_hint", "fail", "one_line", "report"]

#: bad input the command found before (or instead of) a call: flags, JSON, names, protos
EXIT_INPUT = 64

_EXTRAS = {"aiohttp": "etcd", "etcd3": "etcd", "matplotlib": "plot", "opentelemetry": "otel"}


class CliError(Exception):
    """Stop the command: print ``message`` on one line to stderr, exit with ``code``."""

    def __init__(self, message: str, code: int = EXIT_INPUT) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    """End the command with ``message`` and exit ``code`` (bad input by default)."""
    raise CliError(message, code)


def one_line(text: object) -> str:
    """``text`` with every run of whitespace, newlines included, as one space."""
    return " ".join(str(text).split())


def extra_hint(exc: ModuleNotFoundError) -> str:
    """``pip install 'rpcfw[etcd]'`` for a module an extra brings, else the module's name."""
    name = (exc.name or "").split(".")[0]
    extra = _EXTRAS.get(name)
    if extra is None:
        return f"missing Python module {exc.name or one_line(exc)!r}"
    what = "etcd:// targets and the etcd registry need" if extra == "etcd" else "this needs"
    return f"{what} the {extra!r} extra: pip install 'rpcfw[{extra}]' ({name} is missing)"


def report(command: str, exc: CliError) -> NoReturn:
    """Print ``rpcfw COMMAND: error: ...`` to stderr and exit with the error's code."""
    typer.echo(f"rpcfw {command}: error: {exc.message}", err=True)
    raise typer.Exit(exc.code)

"""How the ``rpcfw`` command runs the typer app: plain help labels, and one line (never a
traceback) for an error no command handled (``RPCFW_TRACEBACK=1`` shows it)."""

from __future__ import annotations

import os
import sys

import typer

from .cli_errors import extra_hint, one_line
from .help_labels import tidy

__all__ = ["run"]


def run(app: typer.Typer) -> None:
    """Run the typer ``app`` as ``rpcfw``: Ctrl-C exits 130, and errors a user can fix
    print one line instead of a traceback (``RPCFW_TRACEBACK=1`` shows it)."""
    command = tidy(typer.main.get_command(app))
    try:
        command(prog_name="rpcfw")
    except KeyboardInterrupt:
        sys.exit(130)
    except ModuleNotFoundError as exc:
        if os.environ.get("RPCFW_TRACEBACK"):
            raise
        print(f"rpcfw: error: {extra_hint(exc)}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        if os.environ.get("RPCFW_TRACEBACK"):
            raise
        print(f"rpcfw: error: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        sys.exit(1)

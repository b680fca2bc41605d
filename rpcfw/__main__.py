"""``python -m rpcfw`` runs the CLI (same as the ``rpcfw`` command)."""

from .cli import main

main()

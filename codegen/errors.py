"""The one error ``rpcfw gen`` reports to its user."""

from __future__ import annotations

__all__ = ["GenError"]


class GenError(Exception):
    """Generation failed; ``str()`` is the message for the user (protoc's own when it failed)."""

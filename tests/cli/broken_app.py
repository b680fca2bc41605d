"""An app whose import fails (for ``rpcfw serve``'s import error test)."""

from __future__ import annotations

raise ImportError("cannot import name 'Greeter' from 'nowhere'")

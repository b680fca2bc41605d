"""Test dependencies that may be missing on a machine: a test that needs one fails when it is
missing (CI installs everything, so there a skip would only hide a broken setup), unless
``RPCFW_ALLOW_MISSING=1`` says skipping is wanted (a local run without the dev extras).

The etcd tests have their own switch, ``RPCFW_SKIP_ETCD=1`` (tests/etcd/conftest.py).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

__all__ = ["ALLOW_MISSING", "need"]

ALLOW_MISSING = "RPCFW_ALLOW_MISSING"


def need(module: str, install: str) -> ModuleType:
    """``module`` imported; if it is missing, fail (or skip, with ``RPCFW_ALLOW_MISSING=1``)
    naming what installs it. Usable at module level and inside a test."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f"{module} is not installed ({install}): {exc}"
        if os.environ.get(ALLOW_MISSING) == "1":
            pytest.skip(f"{what} ({ALLOW_MISSING}=1)", allow_module_level=True)
        pytest.fail(
            f"{what}. Tests fail rather than skip when a dependency is missing, so that CI never "
            f"passes without them; to skip them on purpose in a local run, set {ALLOW_MISSING}=1",
            pytrace=False,
        )

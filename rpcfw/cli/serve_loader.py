"""``module:attribute`` -> the service objects to serve: the attribute is a service object, a
list/tuple of them, or a factory (sync or async) returning either."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._method import ServiceBase
from .cli_errors import fail, one_line

__all__ = ["EXIT_BAD_APP", "load_services"]

EXIT_BAD_APP = 3

_WHAT = "an rpcfw service object, a list of them, or a factory (sync or async) returning them"


def _import(spec: str) -> Any:
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        fail(f"{spec!r}: expected MODULE:ATTRIBUTE, e.g. myapp.services:greeter", EXIT_BAD_APP)
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # as python -m does: the app is usually next to you
    try:
        value: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            fail(f"cannot import {module_name!r}: no module named {exc.name!r}", EXIT_BAD_APP)
        fail(f"importing {module_name!r} failed: {one_line(exc)}", EXIT_BAD_APP)
    except Exception as exc:  # the module's own code failed
        fail(
            f"importing {module_name!r} failed: {type(exc).__name__}: {one_line(exc)}", EXIT_BAD_APP
        )
    path = module_name
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            fail(f"{path!r} has no attribute {part!r}", EXIT_BAD_APP)
        path = f"{path}:{part}" if path == module_name else f"{path}.{part}"
    return value


def _as_services(value: Any, spec: str) -> list[ServiceBase]:
    if isinstance(value, ServiceBase):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        items = list(value)
        bad = [item for item in items if not isinstance(item, ServiceBase)]
        if items and not bad:
            return items
        if bad:
            fail(f"{spec} holds {type(bad[0]).__name__!r}, not an rpcfw service", EXIT_BAD_APP)
        fail(f"{spec} holds no services", EXIT_BAD_APP)
    fail(f"{spec} is of type {type(value).__name__!r}, not {_WHAT}", EXIT_BAD_APP)


async def load_services(spec: str) -> list[ServiceBase]:
    """Import ``spec`` and return its services (calling and awaiting a factory)."""
    value = _import(spec)
    if isinstance(value, type):
        fail(f"{spec} is a class; serve an instance of it, or a factory returning one",
             EXIT_BAD_APP)  # fmt: skip
    if callable(value) and not isinstance(value, ServiceBase):
        try:
            value = value()
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            fail(f"{spec}() failed: {type(exc).__name__}: {one_line(exc)}", EXIT_BAD_APP)
    return _as_services(value, spec)

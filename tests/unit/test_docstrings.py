"""Every class and function a public module of rpcfw exports has a docstring, and so has every
public method and property of the classes ``rpcfw`` itself exports (the user-facing API)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import rpcfw

# Their owners write these docstrings as the packages land; add them here then.
NOT_YET_CHECKED: tuple[str, ...] = ()


def public_modules() -> list[ModuleType]:
    """rpcfw and every module below it whose dotted name has no part starting with ``_``."""
    names = ["rpcfw"]
    for info in pkgutil.walk_packages(rpcfw.__path__, "rpcfw."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        if any(info.name == s or info.name.startswith(s + ".") for s in NOT_YET_CHECKED):
            continue
        names.append(info.name)
    return [importlib.import_module(name) for name in names]


def own_docstring(cls: type) -> bool:
    """The class's own docstring: not inherited, not the signature a dataclass makes up."""
    doc = cls.__dict__.get("__doc__")
    return bool(doc and doc.strip()) and not doc.startswith(f"{cls.__name__}(")


def exported(module: ModuleType) -> list[tuple[str, object]]:
    return [
        (f"{module.__name__}.{name}", getattr(module, name))
        for name in getattr(module, "__all__", ())
        if not name.startswith("_")
    ]


def test_the_public_modules_are_found() -> None:
    found = {module.__name__ for module in public_modules()}
    assert {
        "rpcfw", "rpcfw.client", "rpcfw.server", "rpcfw.tls", "rpcfw.interceptors",
        "rpcfw.otel", "rpcfw.policy", "rpcfw.balancer", "rpcfw.resolver", "rpcfw.registry",
        "rpcfw.health", "rpcfw.metadata", "rpcfw.errors", "rpcfw.compression",
        "rpcfw.transport", "rpcfw.etcd", "rpcfw.bench",
    } <= found  # fmt: skip
    assert not [name for name in found if ".".join(name.split(".")[:2]) in NOT_YET_CHECKED]


def test_every_class_and_function_in_a_public_all_has_a_docstring() -> None:
    # constants and type aliases cannot carry a docstring: a comment beside them documents them
    missing = []
    checked = 0
    for module in public_modules():
        for name, obj in exported(module):
            if inspect.isclass(obj):
                checked += 1
                if not own_docstring(obj):
                    missing.append(name)
            elif inspect.isroutine(obj):
                checked += 1
                if not (obj.__doc__ or "").strip():
                    missing.append(name)
    assert checked > 200  # the walk found the modules and their exports
    assert missing == [], f"write a docstring for: {', '.join(missing)}"


def test_every_public_method_of_the_top_level_api_has_a_docstring() -> None:
    missing = []
    for name, obj in exported(rpcfw):
        if not inspect.isclass(obj):
            continue
        for attr in dir(obj):
            if attr.startswith("_"):
                continue
            owner = next(k for k in obj.__mro__ if attr in k.__dict__)
            if not owner.__module__.startswith("rpcfw"):
                continue  # inherited from the standard library (Enum, Exception, ...)
            raw = owner.__dict__[attr]
            if isinstance(raw, staticmethod | classmethod):
                raw = raw.__func__
            if isinstance(raw, property):
                doc = inspect.getdoc(raw)
            elif inspect.isfunction(raw):
                doc = inspect.getdoc(getattr(obj, attr))  # an override may keep its base's
            else:
                continue  # fields, enum members, constants
            if not doc:
                missing.append(f"{name}.{attr}")
    assert missing == [], f"write a docstring for: {', '.join(sorted(set(missing)))}"

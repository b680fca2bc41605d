"""rpcfw's modules import each other at the top, not inside functions to dodge a circle: the
only function-level imports of rpcfw's own modules are the CLI's commands (loaded when run),
optional dependencies (the etcd extra) and backend-specific code loaded on first use. And
``import rpcfw`` works from a fresh interpreter whatever public module is imported first."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

RPCFW = Path(__file__).resolve().parents[2] / "rpcfw"

# module (relative to rpcfw/) -> rpcfw modules it may import inside a function, and why
ALLOWED_LAZY = {
    # the CLI loads each command's module when that command runs (fast --help)
    "cli/": None,
    # the etcd extra is optional: its client is imported when an etcd target is used
    "registry/__init__.py": {"..etcd"},
    "etcd/__init__.py": {".client"},
    # anyio serving and signal handling are loaded by the entry points that need them
    "server/server.py": {"._anyio", "._signals"},
}


def lazy_internal_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and sub.level > 0:
                    found.add("." * sub.level + (sub.module or ""))
    return found


def test_no_rpcfw_module_imports_another_inside_a_function_to_dodge_a_circle() -> None:
    unexpected = {}
    for path in sorted(RPCFW.rglob("*.py")):
        rel = path.relative_to(RPCFW).as_posix()
        if rel.startswith("_proto/") or rel.startswith("cli/"):
            continue
        lazy = lazy_internal_imports(path) - (ALLOWED_LAZY.get(rel) or set())
        lazy = {name for name in lazy if not name.endswith(".etcd")}  # the optional extra
        if lazy:
            unexpected[rel] = sorted(lazy)
    assert not unexpected, unexpected


@pytest.mark.parametrize(
    "first",
    ["rpcfw.health", "rpcfw.server", "rpcfw.reflection", "rpcfw.client", "rpcfw.resolver"],
)
def test_any_public_module_can_be_imported_first(first: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", f"import {first}; import rpcfw; rpcfw.Server([])"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def imported_rpcfw_packages(path: Path) -> set[str]:
    """The rpcfw subpackages a module imports (relative imports, resolved), at any level."""
    package = path.relative_to(RPCFW).parent.parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = list(package[: len(package) - (node.level - 1)])
            target = [*base, *(node.module.split(".") if node.module else [])]
            if target:
                found.add(target[0])
    return found


@pytest.mark.parametrize("layer", ["resolver", "registry"])
def test_resolvers_and_the_service_registry_do_not_depend_on_balancers(layer: str) -> None:
    """Endpoint lives in rpcfw.endpoint, below resolvers and balancers both."""
    users = [
        path.relative_to(RPCFW).as_posix()
        for path in sorted((RPCFW / layer).rglob("*.py"))
        if "balancer" in imported_rpcfw_packages(path)
    ]
    assert not users

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_rpcfw_package_is_listed_for_setuptools() -> None:
    """A package missing from pyproject's list works in an editable install but not in a wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "rpcfw").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found - listed == set(), f"add to pyproject [tool.setuptools] packages: {found - listed}"
    assert "rpcfw_codegen" in listed

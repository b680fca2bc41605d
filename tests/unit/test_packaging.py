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


def test_version_is_one_number_everywhere() -> None:
    """pyproject's version is what ``rpcfw.__version__`` and the installed metadata say."""
    import importlib.metadata

    import rpcfw

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    version = config["project"]["version"]
    assert rpcfw.__version__ == version
    assert importlib.metadata.version("rpcfw") == version, "re-install: scripts/venv.sh"
    assert f"## [{version}]" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def test_license_file_is_the_license_the_metadata_names() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["project"]["license"] == "Apache-2.0"
    assert config["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text

"""The documentation site builds with ``mkdocs build --strict``: a broken link, a missing page
or an API reference to an object that does not exist (``::: rpcfw.Gone``) fails it; and every
public module's objects are reachable from the reference pages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIVENESS = 300.0  # generous bound on one build: only a hang trips it


def build(site: Path, config: Path = REPO / "mkdocs.yml") -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q"]
    return subprocess.run(
        [*command, "-f", str(config), "-d", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=LIVENESS,
    )


def test_docs_build_strict_with_the_api_reference(tmp_path: Path) -> None:
    proc = build(tmp_path / "site")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = (tmp_path / "site" / "api" / "client" / "index.html").read_text()
    assert "A client channel to" in page  # Channel's docstring made it into the reference


def test_a_reference_to_a_missing_object_fails_the_build(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "api").mkdir(parents=True)
    (docs / "index.md").write_text("# x\n")
    (docs / "api" / "gone.md").write_text("# Gone\n\n::: rpcfw.Gone\n")
    config = REPO / "mkdocs.yml"
    text = config.read_text().replace("docs_dir: docs", f"docs_dir: {docs}")
    text = text.split("nav:")[0] + "plugins:" + text.split("plugins:")[1]  # no nav
    broken = tmp_path / "mkdocs.yml"
    broken.write_text(text)
    proc = build(tmp_path / "site", broken)
    assert proc.returncode != 0
    assert "rpcfw.Gone" in proc.stdout + proc.stderr

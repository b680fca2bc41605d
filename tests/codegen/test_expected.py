"""Generated output for proto/ must match the committed files in expected/<backend>/.

After an intended change, refresh them with ``RPCFW_UPDATE_EXPECTED=1 pytest tests/codegen``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from rpcfw_codegen import Backend, generate_tree

from .conftest import BACKENDS, PROTO, tree_diff

EXPECTED = Path(__file__).resolve().parent / "expected"


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.value)
def test_generated_matches_expected(backend: Backend, tmp_path: Path) -> None:
    out = tmp_path / "gen"
    generate_tree([PROTO], out, includes=[PROTO], backend=backend)
    expected_dir = EXPECTED / backend.value
    if os.environ.get("RPCFW_UPDATE_EXPECTED") == "1":
        shutil.rmtree(expected_dir, ignore_errors=True)
        shutil.copytree(out, expected_dir)
    diff = tree_diff(_tree(expected_dir), _tree(out), f"expected/{backend.value}")
    assert not diff, "generated code differs (RPCFW_UPDATE_EXPECTED=1 to accept):\n" + diff


def _snapshot(root: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_rerun_is_idempotent(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    generate_tree([PROTO], out, includes=[PROTO], backend=Backend.PROTOBUF)
    before = _snapshot(out)
    generate_tree([PROTO], out, includes=[PROTO], backend=Backend.PROTOBUF)
    assert _snapshot(out) == before  # same bytes, files not even rewritten

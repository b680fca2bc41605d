"""Shared fixtures: generated trees (both backends) for proto/ and the edge-case protos."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from rpcfw_codegen import Backend, generate_tree

REPO = Path(__file__).resolve().parents[2]
PROTO = REPO / "proto"
EDGE = Path(__file__).resolve().parent / "protos"
BACKENDS = [Backend.BETTERPROTO2, Backend.PROTOBUF]


# Package names the generated trees are imported as (one per backend, so both fit in-process).
def tree_diff(want: Mapping[str, str], got: Mapping[str, str], want_label: str) -> str:
    """A unified diff of two {relative path: text} trees ("" when they are the same)."""
    diff: list[str] = []
    for name in sorted(set(got) | set(want)):
        if got.get(name) != want.get(name):
            diff += difflib.unified_diff(
                want.get(name, "").splitlines(keepends=True),
                got.get(name, "").splitlines(keepends=True),
                f"{want_label}/{name}",
                f"generated/{name}",
            )
    return "".join(diff)


PACKAGES = {Backend.BETTERPROTO2: "gen_bp2", Backend.PROTOBUF: "gen_pb"}


@pytest.fixture(scope="session")
def gen_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dir holding ``gen_bp2`` and ``gen_pb``: proto/ + tests/codegen/protos generated."""
    root = tmp_path_factory.mktemp("generated")
    for backend, package in PACKAGES.items():
        generate_tree([PROTO, EDGE], root / package, includes=[PROTO, EDGE], backend=backend)
    return root


@pytest.fixture(scope="session")
def importable(gen_root: Path) -> Iterator[Path]:
    """``gen_root`` on sys.path, so ``import gen_pb.helloworld_rpcfw`` works."""
    sys.path.insert(0, str(gen_root))
    try:
        yield gen_root
    finally:
        sys.path.remove(str(gen_root))

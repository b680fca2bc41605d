"""rpcfw's own generated code (rpcfw/_proto) must be what ``rpcfw gen`` makes of its .proto files.

After changing a .proto there (or upgrading grpcio-tools), regenerate with::

    python -c "from rpcfw_codegen import *; generate_tree(
        ['rpcfw/_proto/grpc/health/v1/health.proto',
         'rpcfw/_proto/grpc/reflection/v1/reflection.proto',
         'rpcfw/_proto/grpc/reflection/v1alpha/reflection.proto'], 'rpcfw/_proto',
        includes=['rpcfw/_proto'], backend=Backend.PROTOBUF, private_pool=True, force=True)"

(``force``: rpcfw/_proto keeps no manifest of what rpcfw gen wrote, ``.rpcfw-gen.json``, which
this comparison ignores; delete the one the command leaves there. Generate every bundled
.proto in that one call: a later call into the same folder removes what the earlier one wrote.)

(``private_pool``: the messages stay out of protobuf's global pool, so rpcfw can be imported
beside grpclib.health or grpcio-health-checking, which register the same message names.)

and raise pyproject's ``protobuf`` floor to the ``Protobuf Python Version`` in the new _pb2.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from rpcfw_codegen import Backend, generate_tree
from rpcfw_codegen.ownership import MANIFEST

from .conftest import REPO, tree_diff

BUNDLED = REPO / "rpcfw" / "_proto"
HEALTH_PROTO = BUNDLED / "grpc" / "health" / "v1" / "health.proto"
BUNDLED_PROTOS = sorted(BUNDLED.rglob("*.proto"))  # health, reflection v1 and v1alpha


def _generated(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and p.suffix != ".proto"
        and "__pycache__" not in p.parts
        and p.name != MANIFEST
    }


def test_bundled_health_and_reflection_code_is_up_to_date(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    generate_tree(
        BUNDLED_PROTOS, out, includes=[BUNDLED], backend=Backend.PROTOBUF, private_pool=True
    )
    diff = tree_diff(_generated(BUNDLED), _generated(out), "rpcfw/_proto")
    assert not diff, "rpcfw/_proto is stale (see this file's docstring):\n" + diff


def test_protobuf_floor_admits_the_bundled_gencode() -> None:
    """protobuf refuses a runtime older than the gencode: the dependency floor must allow it."""
    import tomllib

    pb2 = (HEALTH_PROTO.parent / "health_pb2.py").read_text(encoding="utf-8")
    gencode = re.search(r"^# Protobuf Python Version: (\d+)\.(\d+)\.(\d+)$", pb2, re.M)
    assert gencode is not None
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (spec,) = [d for d in project["dependencies"] if re.match(r"protobuf\b", d)]
    floor = re.search(r">=\s*([\d.]+)", spec)
    upper = re.search(r"<\s*(\d+)", spec)
    assert floor is not None and upper is not None, spec
    floor_version = tuple(int(x) for x in floor.group(1).split("."))
    gencode_version = tuple(int(x) for x in gencode.groups())
    assert floor_version + (0,) * (3 - len(floor_version)) >= gencode_version, spec
    assert int(upper.group(1)) == gencode_version[0] + 1, spec  # same major as the gencode

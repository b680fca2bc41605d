"""The README's install gives a typed rpcfw: a fresh venv, both backends, mypy --strict clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_IN_A_CLONE = (
    ".git",
    ".venv",
    "build",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
)

# Uses rpcfw (client, server, status), rpcfw_codegen, and the code generated for both message
# backends; run as a program it serves betterproto2 messages and calls with both backends' stubs.
CONSUMER = '''
"""A user's module: both backends' stubs, rpcfw's runtime and rpcfw_codegen."""

from __future__ import annotations

import asyncio

import rpcfw
from gen_bp.helloworld_rpcfw import GreeterBase, GreeterStub, HelloReply, HelloRequest
from gen_pb import helloworld_rpcfw as pb
from rpcfw_codegen import Backend


class Greeter(GreeterBase):
    async def say_hello(self, request: HelloRequest, context: rpcfw.CallContext) -> HelloReply:
        if not request.name:
            context.abort(rpcfw.Status.INVALID_ARGUMENT, "name is required")
        return HelloReply(message=f"Hello, {request.name}!")


async def main() -> list[str]:
    server = rpcfw.Server([Greeter()])
    await server.start("127.0.0.1", 0)
    try:
        async with rpcfw.Channel(f"127.0.0.1:{server.port}") as channel:
            bp_reply = await GreeterStub(channel).say_hello(HelloRequest(name="bp"), timeout=5)
            pb_reply: pb.HelloReply = await pb.GreeterStub(channel).say_hello(
                pb.HelloRequest(name="pb"), timeout=5
            )
    finally:
        await server.stop(grace=1)
    return [bp_reply.message, pb_reply.message, Backend.PROTOBUF.value]


if __name__ == "__main__":
    print(asyncio.run(main()))
'''

# Each line is a type error only if mypy sees the real types (an unresolved import is Any).
WRONG = """
import rpcfw
from gen_bp.helloworld_rpcfw import HelloRequest as BpRequest
from gen_pb.helloworld_rpcfw import HelloRequest as PbRequest
from rpcfw_codegen import Backend

a: int = rpcfw.Status.OK
b: int = BpRequest(name="x").name
c: int = PbRequest(name="x").name
d: int = Backend.PROTOBUF
"""


def run(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_readme_install_in_a_fresh_venv_type_checks_generated_code_for_both_backends(
    tmp_path: Path,
) -> None:
    # a copy of the checkout, as a fresh clone has it: the strict editable install writes its
    # link tree into the project's build/, which the checkout's own .venv uses
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*NOT_IN_A_CLONE))
    venv = tmp_path / "venv"
    started = time.monotonic()
    # scripts/venv.sh is what the README's commands (and its install section) run
    setup = run("bash", src / "scripts" / "venv.sh", venv, "typing", cwd=tmp_path)
    assert setup.returncode == 0, setup.stderr
    installed = time.monotonic() - started
    python = venv / "bin" / "python"

    app = tmp_path / "app"
    app.mkdir()
    for out, messages in (("gen_bp", "betterproto2"), ("gen_pb", "protobuf")):
        gen = run(
            venv / "bin" / "rpcfw", "gen", src / "proto", "-I", src / "proto",
            "-o", out, "--messages", messages, cwd=app,
        )  # fmt: skip
        assert gen.returncode == 0, gen.stdout + gen.stderr
    (app / "consumer.py").write_text(textwrap.dedent(CONSUMER), encoding="utf-8")
    (app / "wrong.py").write_text(textwrap.dedent(WRONG), encoding="utf-8")

    # mypy from the test's environment, resolving imports in the fresh venv only (its
    # site-packages and the paths of its .pth files), as a mypy installed there would
    mypy = run(
        sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--config-file", "",
        "--python-executable", python, "consumer.py", "gen_bp", "gen_pb", "wrong.py", cwd=app,
    )  # fmt: skip
    errors = [line for line in mypy.stdout.splitlines() if ": error:" in line]
    # consumer.py and the generated packages are clean; wrong.py proves mypy saw the real types:
    # each of its wrong assignments is one assignment error
    assert [e.split(":")[:2] for e in errors] == [["wrong.py", str(n)] for n in (7, 8, 9, 10)], (
        mypy.stdout + mypy.stderr
    )
    assert all(e.endswith("[assignment]") for e in errors), mypy.stdout
    assert mypy.stdout.splitlines()[-1].startswith("Found 4 errors in 1 file"), mypy.stdout

    # and the consumer runs: a betterproto2 server answers both backends' stubs
    ran = run(python, "consumer.py", cwd=app, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "['Hello, bp!', 'Hello, pb!', 'protobuf']"
    print(f"venv install {installed:.1f} s, whole test {time.monotonic() - started:.1f} s")

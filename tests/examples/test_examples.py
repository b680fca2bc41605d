"""Every script in examples/ runs as the README of examples/ says (stubs generated from proto/
with ``rpcfw gen``, then ``python examples/<name>.py``), prints what it promises and exits 0;
and the examples are ``mypy --strict`` clean against the generated code, as user code must be.
The etcd example runs against a real etcd started on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..etcd_server import EtcdProcess, etcd_available

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
LIVENESS = 120.0  # generous bound on one example: only a hang trips it

# example -> lines its output must contain (in this order)
EXPECTED: dict[str, list[str]] = {
    "hello_world.py": ["Hello, world!", "refused: INVALID_ARGUMENT: name is required"],
    "streaming.py": [
        "unary: hi",
        "server streaming: [0, 1, 2]",
        "client streaming: one two three",
        "bidi: ping -> PING",
        "bidi: pong -> PONG",
        "bidi status: (None, <Status.OK: 0>)",
    ],
    "discovery_local.py": [
        "3 servers: [('server-0', 10), ('server-1', 10), ('server-2', 10)]",
        "after stopping server-0: [('server-1', 15), ('server-2', 15)]",
    ],
    "tls_mtls.py": [
        "mTLS: Hello, ann, you are billing.internal",
        "without a client certificate: UNAVAILABLE",
        "handshakes the server refused: 1",
    ],
    "interceptors.py": [
        "with a token: Hello, ann from billing",
        "without a deadline: INVALID_ARGUMENT - this server requires a deadline",
        "with a wrong token: UNAUTHENTICATED",
        "calls per method: {'/helloworld.Greeter/SayHello': 3}",
    ],
    "retries.py": [
        "Hello, ann (attempt 3)",
        "grpc-previous-rpc-attempts per attempt: [None, '1', '2']",
    ],
    "tracing.py": [
        "Hello, ann!",
        "traces: 1",
        "CLIENT helloworld.Greeter/SayHello (root, UNSET)",
        "SERVER helloworld.Greeter/SayHello (child, UNSET)",
        "CLIENT helloworld.Greeter/SayHello (child, UNSET)",
        "SERVER helloworld.Greeter/SayHello (child, UNSET)",
    ],
    "anyio_trio.py": ["on trio: ['Hello, ann!', 'Hello, bob!']"],
    "aiohttp_app.py": ["GET /hello/ann -> {'message': 'Hello, ann!'}"],
    "fastapi_app.py": ['GET /hello/ann -> {"message":"Hello, ann!"}'],
}
NEEDS_ETCD = {"discovery_etcd.py": ["served by: [('server-0', 10), ('server-1', 10)]"]}


@pytest.fixture(scope="module")
def gen_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``gen``, generated exactly as examples/README.md says."""
    root = tmp_path_factory.mktemp("examples")
    subprocess.run(
        [sys.executable, "-m", "rpcfw", "gen", "proto", "-I", "proto", "-o", str(root / "gen")],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=LIVENESS,
    )
    return root


def run_example(name: str, gen_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(gen_path)}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=LIVENESS,
    )


def assert_prints(proc: subprocess.CompletedProcess[str], lines: list[str]) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    out = [line.strip() for line in proc.stdout.splitlines()]
    found = [line for line in out if line in lines]
    assert found == lines, f"expected, in order: {lines}\ngot:\n{proc.stdout}"


def test_every_example_is_run_by_a_test() -> None:
    scripts = {path.name for path in EXAMPLES.glob("*.py")}
    assert scripts == set(EXPECTED) | set(NEEDS_ETCD)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_prints_what_it_promises(name: str, gen_path: Path) -> None:
    assert_prints(run_example(name, gen_path), EXPECTED[name])


def test_anyio_example_runs_on_asyncio_too(gen_path: Path) -> None:
    proc = run_example("anyio_trio.py", gen_path, "asyncio")
    assert_prints(proc, ["on asyncio: ['Hello, ann!', 'Hello, bob!']"])


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdProcess]:
    if not etcd_available() and os.environ.get("RPCFW_SKIP_ETCD") == "1":
        # the etcd tests' switch (tests/etcd/conftest.py): local runs only, CI never sets it
        pytest.skip("no etcd binary (RPCFW_SKIP_ETCD=1: the etcd tests are skipped on purpose)")
    proc = EtcdProcess(tmp_path / "etcd")  # no etcd binary: fails loudly (no skip)
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


def test_etcd_discovery_example_against_a_real_etcd(gen_path: Path, etcd: EtcdProcess) -> None:
    endpoint = etcd.endpoint.removeprefix("http://")
    proc = run_example("discovery_etcd.py", gen_path, "--etcd", endpoint)
    assert_prints(proc, NEEDS_ETCD["discovery_etcd.py"])


MYPY_INI = """\
[mypy]
strict = True
python_version = 3.11
warn_unreachable = True

[mypy-rpcfw.*]
# the runtime is checked by its own run; here it plays an installed library
ignore_errors = True
"""


def test_examples_are_mypy_strict_clean(gen_path: Path, tmp_path: Path) -> None:
    (tmp_path / "mypy.ini").write_text(MYPY_INI)
    env = {**os.environ, "MYPYPATH": f"{gen_path}{os.pathsep}{REPO}"}
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "mypy", "--config-file", str(tmp_path / "mypy.ini")),
            *("--cache-dir", str(tmp_path / "cache"), "--no-error-summary"),
            *sorted(str(path) for path in EXAMPLES.glob("*.py")),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=LIVENESS * 3,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

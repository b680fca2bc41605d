"""CLI tests run the installed ``rpcfw`` command in a subprocess, against Echo servers on
127.0.0.1 port 0 served from a thread of the test process (or by ``rpcfw serve`` itself)."""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import trustme

import rpcfw

from ..conftest import ROOT, load_echo
from ..echo_service import make_echo_service

LIVENESS = 60.0  # bound on waits that must not hang (not a timing assertion)
PROTO = ["--proto", str(ROOT / "proto" / "echo" / "v1" / "echo.proto"), "-I", str(ROOT / "proto")]


def rpcfw_command() -> str:
    found = shutil.which("rpcfw")
    assert found is not None, "the rpcfw command is not installed (pip install -e .)"
    return found


@pytest.fixture(scope="session")
def cli_env(generated_root: Path) -> dict[str, str]:
    """The environment of the commands: the generated packages and the repository importable
    (``rpcfw serve tests.cli.serve_app:...``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(generated_root), str(ROOT)])
    env.pop("RPCFW_TRACEBACK", None)
    env["COLUMNS"] = "200"
    return env


def run(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [rpcfw_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=LIVENESS,
    )


class Lines:
    """The lines a stream of a child process writes, read by a thread (to wait on them)."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str) -> str:
        """The first (next) line containing ``text``; fails at the end of the stream."""
        while True:
            line = self._queue.get(timeout=LIVENESS)
            if line is None:
                raise AssertionError(f"{text!r} never came; lines: {self.seen}")
            self.seen.append(line)
            if text in line:
                return line

    def rest(self) -> list[str]:
        """Every line until the stream ends."""
        while (line := self._queue.get(timeout=LIVENESS)) is not None:
            self.seen.append(line)
        return self.seen


@dataclass
class ThreadServer:
    server: rpcfw.Server
    loop: asyncio.AbstractEventLoop

    @property
    def address(self) -> str:
        return self.server.address


def serve_in_thread(services: list[Any], **options: Any) -> Iterator[ThreadServer]:
    """Start a Server with ``services`` on its own loop in a thread; stop it afterwards."""
    tls = options.pop("tls", None)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> rpcfw.Server:
        server = rpcfw.Server(services, **options)
        await server.start("127.0.0.1", 0, tls=tls)
        return server

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(LIVENESS)
    try:
        yield ThreadServer(server, loop)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(grace=0), loop).result(LIVENESS)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(LIVENESS)
        loop.close()


@pytest.fixture(scope="module")
def echo_server(generated_root: Path) -> Iterator[ThreadServer]:
    """Echo (protobuf messages) with server reflection on."""
    echo = load_echo(generated_root, "protobuf")
    yield from serve_in_thread([make_echo_service(echo, "cli")], reflection=True)


@pytest.fixture(scope="module")
def plain_server(generated_root: Path) -> Iterator[ThreadServer]:
    """Echo without reflection: commands need --proto."""
    echo = load_echo(generated_root, "protobuf")
    yield from serve_in_thread([make_echo_service(echo, "plain")])


@dataclass
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    files = TlsFiles(folder / "ca.pem", folder / "server.crt", folder / "server.key")
    ca.cert_pem.write_to_path(files.ca)
    for index, pem in enumerate(leaf.cert_chain_pems):
        pem.write_to_path(files.cert, append=index > 0)
    leaf.private_key_pem.write_to_path(files.key)
    return files


@pytest.fixture(scope="module")
def tls_server(generated_root: Path, tls_files: TlsFiles) -> Iterator[ThreadServer]:
    echo = load_echo(generated_root, "protobuf")
    tls = rpcfw.ServerTLS(tls_files.cert, tls_files.key)
    yield from serve_in_thread([make_echo_service(echo, "tls")], reflection=True, tls=tls)

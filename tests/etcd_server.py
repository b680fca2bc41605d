"""Run a real etcd (Debian's etcd-server, 3.4) for tests: loopback only, free ports, temp data.

    proc = EtcdProcess(tmp_path / "n1", free_port(), free_port())
    proc.start()          # returns once /health answers {"health": "true"}
    proc.kill()           # SIGKILL, like a crash
    proc.restart(keep_data=True)

A 3-member cluster is three EtcdProcess objects sharing one ``initial_cluster`` string
(see :func:`make_cluster`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ETCD_BINARY = shutil.which("etcd") or "/usr/bin/etcd"


def etcd_available() -> bool:
    return os.access(ETCD_BINARY, os.X_OK)


_handed_out: set[int] = set()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (never the same one twice in this process)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


class EtcdProcess:
    """One etcd member listening on 127.0.0.1 only."""

    def __init__(
        self,
        data_dir: Path | str | None = None,
        client_port: int | None = None,
        peer_port: int | None = None,
        *,
        name: str = "n1",
        initial_cluster: str | None = None,
        cluster_token: str = "rpcfw-test",
    ) -> None:
        if data_dir is None:
            data_dir = tempfile.mkdtemp(prefix="rpcfw-etcd-")
        self.data_dir = Path(data_dir)
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.name = name
        self.initial_cluster = initial_cluster or f"{name}=http://127.0.0.1:{self.peer_port}"
        self.cluster_token = cluster_token
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        client = self.url
        peer = f"http://127.0.0.1:{self.peer_port}"
        state = "existing" if (self.data_dir / "member").exists() else "new"
        return [
            ETCD_BINARY,
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={self.initial_cluster}",
            f"--initial-cluster-state={state}",
            f"--initial-cluster-token={self.cluster_token}",
            "--heartbeat-interval=10",
            "--election-timeout=100",
            "--log-level=error",
            "--logger=zap",
        ]

    def launch(self) -> None:
        """Start the process without waiting for health (cluster members start together)."""
        if self.running:
            raise RuntimeError(f"etcd {self.name} is already running")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log = self._log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        finally:
            log.close()

    def start(self, timeout: float = 15.0) -> None:
        self.launch()
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(
                    f"etcd {self.name} exited with {self._proc.returncode}: {self.log_tail()}"
                )
            if self.healthy():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"etcd {self.name} not healthy in {timeout}s: {self.log_tail()}")
            # another process: nothing to wait on but its /health answer, polled (``timeout``
            # is a liveness bound, not a speed measure)
            time.sleep(0.02)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=0.5) as resp:
                body = json.loads(resp.read())
        except (OSError, ValueError, urllib.error.URLError):
            return False
        return bool(body.get("health") == "true")

    def kill(self) -> None:
        """SIGKILL (a crash); waits for the process to be gone."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.send_signal(signal.SIGCONT)  # a paused process dies at once too
            self._proc.wait(timeout=10)
        self._proc = None

    def pause(self) -> None:
        """SIGSTOP: etcd hangs (its sockets stay open, nothing answers)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._proc = None

    def restart(self, *, keep_data: bool = True, timeout: float = 15.0) -> None:
        """Kill and start again, with the same data or (``keep_data=False``) an empty one."""
        self.kill()
        if not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        self.start(timeout)

    def remove_data(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self._log_path.unlink(missing_ok=True)

    def log_tail(self, size: int = 2000) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"


def make_cluster(base_dir: Path, size: int = 3) -> list[EtcdProcess]:
    """``size`` members sharing one initial cluster (not started: see :func:`start_all`)."""
    ports = [(free_port(), free_port()) for _ in range(size)]
    names = [f"m{i + 1}" for i in range(size)]
    initial = ",".join(
        f"{name}=http://127.0.0.1:{peer}" for name, (_, peer) in zip(names, ports, strict=True)
    )
    return [
        EtcdProcess(
            base_dir / name,
            client,
            peer,
            name=name,
            initial_cluster=initial,
            cluster_token=str(base_dir),
        )
        for name, (client, peer) in zip(names, ports, strict=True)
    ]


def start_all(members: Sequence[EtcdProcess], timeout: float = 20.0) -> None:
    for member in members:
        member.launch()
    for member in members:
        member.wait_healthy(timeout)

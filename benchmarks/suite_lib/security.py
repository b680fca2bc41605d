"""Transport options of ``benchmarks/suite.py`` pairs: TLS and gzip message compression.

A pair with an option runs the same stacks as its plaintext pair, over TLS (a throwaway CA and
a ``localhost`` / ``127.0.0.1`` certificate made by ``trustme`` for the run; the client still
dials 127.0.0.1 and checks the name ``localhost``) or with gzip (the server compresses
responses, the client requests). Only rpcfw and grpc.aio take options. An option row runs
only its ``cells`` (the others read "—"), and the report adds a table of each option row's
throughput as a share of the same stack's plaintext row (issue 10's target: TLS costs rpcfw
no larger a share than it costs grpc.aio).

Every unary payload in the suite is ``payload(n)``: JSON-lines-like text that gzip (level 6,
as rpcfw and grpc-core) shrinks about 8:1, so the gzip cells compress something realistic
rather than a run of one byte; without compression the bytes' content costs nothing.
"""

from __future__ import annotations

import functools
import statistics
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "OPTIONS",
    "Option",
    "SERVER_NAME",
    "check",
    "cipher_cost",
    "grpc_add_port",
    "grpc_channel",
    "grpc_server",
    "make_certs",
    "payload",
    "report_note",
    "rpcfw_channel",
    "rpcfw_server_kwargs",
    "rpcfw_start_kwargs",
    "share_table",
]


@dataclass(frozen=True, slots=True)
class Option:
    name: str  # "tls" or "gzip"
    suffix: str  # appended to the plaintext pair's label
    cells: tuple[str, ...]  # the cells (names) an option row runs, within the mode's cells


OPTIONS = {
    "tls": Option(
        "tls",
        ", TLS",
        ("unary 0 B c=1", "unary 0 B c=64", "unary 100 KiB c=8", "server-stream msg/s"),
    ),
    "gzip": Option("gzip", ", gzip", ("unary 0 B c=64", "unary 100 KiB c=8")),
}
SERVER_NAME = "localhost"  # the name in the certificate (with IP 127.0.0.1)


@functools.cache
def payload(n: int) -> bytes:
    """``n`` bytes of compressible text (deterministic)."""
    lines, size, i = [], 0, 0
    while size < n:
        line = (
            f'{{"id": {i}, "user": "user-{i * 7919 % 1000:03d}", "path": '
            f'"/api/v1/items/{i * 31 % 500}", "status": {200 if i % 13 else 404}, '
            f'"latency_us": {i * 977 % 5000}}}\n'
        )
        lines.append(line)
        size += len(line)
        i += 1
    return "".join(lines).encode()[:n]


def make_certs(directory: Path) -> Path:
    """Write ``ca.pem``, ``server.crt`` and ``server.key`` for this run into ``directory``."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    leaf = ca.issue_cert(SERVER_NAME, "127.0.0.1")
    (directory / "ca.pem").write_bytes(ca.cert_pem.bytes())
    (directory / "server.crt").write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    (directory / "server.key").write_bytes(leaf.private_key_pem.bytes())
    return directory


def cipher_cost(certs: Path, size: int = 100 * 1024, rounds: int = 300) -> dict[str, Any]:
    """What OpenSSL alone costs one side of a unary call over TLS: encrypting ``size`` bytes
    and decrypting ``size`` bytes, through ``ssl.SSLObject`` on memory buffers (no sockets, no
    event loop) with the run's certificate, in this process. The fastest of 5 batches (the
    least disturbed by other load), in microseconds per call."""
    import contextlib
    import ssl
    import time

    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs / "server.crt", certs / "server.key")
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(certs / "ca.pem")
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=SERVER_NAME)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):  # the handshake, by hand
        for end in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                end.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    data = payload(size)
    buffer = memoryview(bytearray(256 * 1024))
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            client.write(data)  # encrypt
            s_in.write(c_out.read())
            got = 0
            while got < size:  # decrypt
                got += server.read(len(buffer), buffer)
        best = min(best, (time.perf_counter() - started) / rounds)
    return {"cipher": (client.cipher() or ("?",))[0], "size": size, "us": best * 1e6}


def check(stack: str, option: str | None) -> None:
    if option and not (stack.startswith("rpcfw") or stack == "grpc.aio"):
        raise ValueError(f"{stack} does not take the {option} option")


# ----------------------------------------------------------------------------------------
# servers


def rpcfw_server_kwargs(option: str | None) -> dict[str, Any]:
    return {"compression": "gzip"} if option == "gzip" else {}


def rpcfw_start_kwargs(option: str | None, certs: Path | None) -> dict[str, Any]:
    if option != "tls":
        return {}
    import rpcfw

    assert certs is not None
    return {"tls": rpcfw.ServerTLS(certs / "server.crt", certs / "server.key")}


def grpc_server(option: str | None) -> Any:
    import grpc

    if option == "gzip":
        return grpc.aio.server(compression=grpc.Compression.Gzip)
    return grpc.aio.server()


def grpc_add_port(server: Any, option: str | None, certs: Path | None) -> int:
    import grpc

    if option != "tls":
        return int(server.add_insecure_port("127.0.0.1:0"))
    assert certs is not None
    pair = ((certs / "server.key").read_bytes(), (certs / "server.crt").read_bytes())
    return int(server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([pair])))


# ----------------------------------------------------------------------------------------
# clients


def rpcfw_channel(port: int, option: str | None, certs: Path | None) -> Any:
    import rpcfw

    kwargs: dict[str, Any] = {}
    if option == "gzip":
        kwargs["compression"] = "gzip"
    elif option == "tls":
        assert certs is not None
        ca = (certs / "ca.pem").read_bytes()
        kwargs["tls"] = rpcfw.ChannelTLS(ca, server_name=SERVER_NAME)
    return rpcfw.Channel(f"127.0.0.1:{port}", **kwargs)


def grpc_channel(port: int, option: str | None, certs: Path | None) -> Any:
    import grpc

    target = f"127.0.0.1:{port}"
    if option == "gzip":
        return grpc.aio.insecure_channel(target, compression=grpc.Compression.Gzip)
    if option == "tls":
        assert certs is not None
        credentials = grpc.ssl_channel_credentials((certs / "ca.pem").read_bytes())
        options = (("grpc.ssl_target_name_override", SERVER_NAME),)
        return grpc.aio.secure_channel(target, credentials, options=options)
    return grpc.aio.insecure_channel(target)


# ----------------------------------------------------------------------------------------
# report


def report_note(data: dict[str, Any]) -> str:
    """The report's paragraph on option rows ("" without any)."""
    if not data.get("options"):
        return ""
    size = 100 * 1024
    packed = len(zlib.compress(payload(size), 6))
    return (
        "Rows ending in `, TLS` or `, gzip` are the same pair over TLS (a fresh CA and "
        "certificate per run; the handshake is outside the measurement) or with gzip "
        "compression both ways (requests by the client, responses by the server); their ratio "
        "in brackets is against grpc.aio + grpc.aio with the same option, and they run only "
        "some cells (— elsewhere). Unary payloads are JSON-lines-like text that gzip level 6 "
        f"shrinks {size / packed:.1f}:1 (100 KiB to {packed:,} bytes)."
    )


def _share(data: dict[str, Any], loop: str, cell: str, label: str, plain: str) -> str:
    """Median option rate over median plaintext rate, and the range of the per-repeat ratios
    (the two rows ran back to back in each repeat)."""
    slot = data["results"].get(loop, {}).get(cell, {})
    runs, base = slot.get(label), slot.get(plain)
    if not runs or not base:
        return "—"
    text = f"{statistics.median(runs) / statistics.median(base):.0%}"
    if len(runs) == len(base) > 1:  # no failed run: the lists pair up by repeat
        ratios = [r / b for r, b in zip(runs, base, strict=True)]
        text += f" ({min(ratios):.0%}..{max(ratios):.0%})"
    return text


def share_table(data: dict[str, Any], loop: str) -> str:
    """For each option row: its throughput as a share of the same pair in plaintext, by cell."""
    options: dict[str, str] = data.get("options", {})
    if not options:
        return ""
    ran = data["option_cells"]
    cells = [c for c in data["cells"] if any(c in ran[label] for label in options)]
    lines = [
        "Throughput with each option as a share of the same pair's plaintext throughput "
        "(median over median; in brackets the range of the per-repeat ratios)",
        "",
        "| option: server + client | " + " | ".join(cells) + " |",
        "|---" * (len(cells) + 1) + "|",
    ]
    for label, name in options.items():
        plain = label.removesuffix(OPTIONS[name].suffix)
        row = [
            _share(data, loop, cell, label, plain) if cell in ran[label] else "—" for cell in cells
        ]
        lines.append(f"| {name}: {plain} | " + " | ".join(row) + " |")
    return "\n".join(lines + _cipher_lines(data, loop))


def _cipher_lines(data: dict[str, Any], loop: str) -> list[str]:
    """Per TLS row at 100 KiB: the time TLS adds to a call, beside what the cipher alone
    costs (one side encrypts and decrypts 100 KiB per call; both sides do)."""
    cost = data.get("cipher_cost")
    cell = "unary 100 KiB c=8"
    if not cost or cell not in data["cells"]:
        return []
    lines = [
        "",
        f"Where TLS's cost goes at {cell}: the wall time TLS adds to a call (1/TLS rate - "
        "1/plaintext rate, medians), beside OpenSSL's own cost of encrypting and decrypting "
        f"{cost['size'] // 1024} KiB ({cost['cipher']}, measured in the parent process on "
        f"memory buffers): {cost['us']:.0f} µs for one side, {2 * cost['us']:.0f} µs for both.",
        "",
    ]
    slot = data["results"].get(loop, {}).get(cell, {})
    for label, name in data.get("options", {}).items():
        plain = label.removesuffix(OPTIONS[name].suffix)
        if name != "tls" or not slot.get(label) or not slot.get(plain):
            continue
        added = 1e6 / statistics.median(slot[label]) - 1e6 / statistics.median(slot[plain])
        lines.append(f"- {plain}: TLS adds {added:.0f} µs per call")
    return lines

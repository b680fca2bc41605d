"""Unix domain socket addresses, as gRPC names them: channel targets, server addresses, peers.

- ``unix:path``: a socket file, the path relative (to the working directory) or absolute
- ``unix:///abs/path`` (and ``unix:/abs/path``): an absolute path; ``unix://`` takes no authority
- ``unix-abstract:name``: Linux's abstract namespace, no file; the socket address is ``"\\0name"``

An endpoint's host and a server's address keep the written form (``unix:/abs/path``,
``unix-abstract:name``): that string identifies the socket everywhere (logs, ``Endpoint``,
``server.address``), and :func:`socket_address` turns it into what ``connect``/``bind`` take.

Binding a file socket (:func:`bind_unix`) never deletes what it should not: a socket file no
one listens on (connection refused) is stale and removed; a live one is ``address in use``; a
path that is not a socket is refused and left alone. :func:`remove_socket_file` removes only
the socket file the server bound (same inode).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
from dataclasses import dataclass

__all__ = [
    "UNIX_SCHEMES",
    "BoundUnixSocket",
    "UnixAddress",
    "bind_unix",
    "is_unix_host",
    "listening_address",
    "parse_unix",
    "remove_socket_file",
    "socket_address",
    "unix_peer",
]

log = logging.getLogger("rpcfw.server")

#: the target schemes that name a unix socket (``scheme:rest``, no ``//`` needed)
UNIX_SCHEMES = ("unix", "unix-abstract")


@dataclass(frozen=True, slots=True)
class UnixAddress:
    """A unix socket: a file ``path`` (relative or absolute), or an ``abstract`` name."""

    path: str
    abstract: bool = False

    @property
    def socket_address(self) -> str:
        """What ``connect``/``bind`` take: the path, or ``"\\0name"``."""
        return "\0" + self.path if self.abstract else self.path

    def __str__(self) -> str:
        return f"unix-abstract:{self.path}" if self.abstract else f"unix:{self.path}"


def parse_unix(text: str) -> UnixAddress | None:
    """``text`` as a unix address, or None if it names no unix socket (its scheme is neither
    ``unix`` nor ``unix-abstract``; ``unix`` is matched as a scheme, so ``unix:50051`` is the
    relative path ``50051``, as in gRPC). Raises ValueError for a malformed one."""
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in UNIX_SCHEMES:
        return None
    if scheme == "unix-abstract":
        if not rest:
            raise ValueError(f"invalid target {text!r}: empty abstract socket name")
        if rest.startswith("//"):
            raise ValueError(
                f"invalid target {text!r}: write unix-abstract:NAME (no //; the name is "
                "everything after the colon)"
            )
        return UnixAddress(rest, abstract=True)
    if rest.startswith("//"):  # unix://authority/path: the authority must be empty
        authority, slash, path = rest[2:].partition("/")
        if authority:
            raise ValueError(
                f"invalid target {text!r}: unix:// takes no authority (unix:///absolute/path "
                "or unix:relative/path)"
            )
        rest = slash + path
    if not rest or rest == "/":
        raise ValueError(f"invalid target {text!r}: empty socket path")
    if "\0" in rest:
        raise ValueError(f"invalid target {text!r}: NUL in socket path")
    return UnixAddress(rest)


def socket_address(host: str) -> str | None:
    """The socket address of an endpoint host written ``unix:...``/``unix-abstract:...``;
    None for a network host."""
    if not is_unix_host(host):
        return None
    address = parse_unix(host)
    assert address is not None
    return address.socket_address


def is_unix_host(host: str | None) -> bool:
    """``host`` is a unix socket written as a target (``unix:...``, ``unix-abstract:...``)."""
    return host is not None and host.lower().startswith(("unix:", "unix-abstract:"))


def listening_address(sockname: object) -> tuple[str, int]:
    """A listening socket's ``getsockname()`` as ``(host, port)``; a unix socket is
    ``("unix:/abs/path", 0)`` or ``("unix-abstract:name", 0)``."""
    if isinstance(sockname, tuple):
        return str(sockname[0]), int(sockname[1])
    return unix_peer(sockname), 0


def peer_name(address: object) -> str:
    """A socket's peer address as logs and ``CallContext.peer`` show it: ``host:port``,
    ``unix:/path`` / ``unix-abstract:name`` / ``unix:`` for a unix socket, or ``unknown``."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    if isinstance(address, str | bytes):  # a unix socket ("" for an unnamed client socket)
        return unix_peer(address)
    return str(address) if address else "unknown"


def unix_peer(name: object) -> str:
    """A unix socket's ``getpeername()``/``getsockname()`` as a string: ``unix:/path``,
    ``unix-abstract:name``, or ``unix:`` for an unnamed socket (a client's, usually)."""
    if isinstance(name, bytes):  # Linux returns abstract names as bytes
        name = os.fsdecode(name)
    if not isinstance(name, str) or not name:
        return "unix:"
    if name.startswith("\0"):
        return "unix-abstract:" + name[1:]
    return "unix:" + name


@dataclass(frozen=True, slots=True)
class BoundUnixSocket:
    """A bound, listening unix socket and what identifies its file (to remove only that)."""

    sock: socket.socket
    address: UnixAddress
    inode: tuple[int, int] | None  # (st_dev, st_ino) of the socket file; None: abstract


def _check_path(path: str) -> None:
    """Make ``path`` free to bind: a stale socket file is removed, anything else raises."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(
            errno.EADDRINUSE,
            f"cannot serve on unix:{path}: the path exists and is not a socket (left as it is)",
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)  # a full backlog answers EAGAIN at once instead of blocking
    try:
        probe.connect(path)
    except ConnectionRefusedError:  # no one listens: a socket left by a server that died
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        log.info("removed the stale socket file %s (no server listens on it)", path)
        return
    except BlockingIOError:
        pass  # a listener with a full backlog: alive
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"address in use: a server is listening on unix:{path}")


def bind_unix(address: UnixAddress, backlog: int) -> BoundUnixSocket:
    """A listening socket on ``address`` (a file path is made absolute first). A stale socket
    file is removed; a live socket or a path that is not a socket raises OSError (EADDRINUSE).
    """
    if not address.abstract:
        address = UnixAddress(os.path.abspath(address.path))
        _check_path(address.path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(address.socket_address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OSError(errno.EADDRINUSE, f"address in use: {address}") from None
            raise
        inode = None
        if not address.abstract:
            st = os.stat(address.path)
            inode = (st.st_dev, st.st_ino)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return BoundUnixSocket(sock, address, inode)


def remove_socket_file(bound: BoundUnixSocket) -> None:
    """Remove the socket file ``bound`` created, if it is still that file (not one a later
    server bound at the same path)."""
    if bound.inode is None:
        return
    with contextlib.suppress(OSError):
        st = os.lstat(bound.address.path)
        if (st.st_dev, st.st_ino) == bound.inode and stat.S_ISSOCK(st.st_mode):
            os.unlink(bound.address.path)

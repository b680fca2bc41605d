"""TLS for servers and channels: contexts with ALPN ``h2``, mTLS, certificate reload, and the
peer identity a server can authorize on.

- ``ServerTLS(cert_chain, private_key, client_ca=..., require_client_cert=...)``: a listener's
  TLS. The key pair is re-read when its files change (checked on new connections, at most
  every ``reload_interval`` seconds): a renewed certificate is used for new connections with
  no restart, and a bad renewal is logged and the old pair kept.
- ``ChannelTLS(root_certificates=None, cert_chain=..., private_key=..., server_name=...)``:
  a channel's TLS; no roots means the system trust store.
- Either also wraps a ready ``ssl.SSLContext`` (``from_context``); ALPN ``h2`` is set on it.
- ``PeerIdentity``: the verified client certificate's subject and subject alternative names.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._unix import is_unix_host

__all__ = ["ALPN_H2", "ChannelTLS", "PeerIdentity", "ServerTLS", "peer_identity"]

log = logging.getLogger("rpcfw.tls")

ALPN_H2 = "h2"
#: the name a unix socket's certificate is checked against when ``ChannelTLS`` has no
#: ``server_name`` (the ``:authority`` of calls on a unix target, as in gRPC)
UNIX_SERVER_NAME = "localhost"
PathLike = str | os.PathLike[str]


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """A peer's verified certificate, as a server sees its client (mTLS)."""

    subject: str  # RFC 4514 style, most specific first: "CN=client,O=Acme"
    common_name: str | None
    dns_names: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()


def peer_identity(cert: Mapping[str, Any] | None) -> PeerIdentity | None:
    """The identity in ``SSLObject.getpeercert()``'s dict (None: no verified certificate)."""
    if not cert:
        return None
    names: list[tuple[str, str]] = []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            names.append((key, value))
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
             "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST"}  # fmt: skip
    subject = ",".join(f"{short.get(k, k)}={v}" for k, v in reversed(names))
    sans: dict[str, list[str]] = {}
    for kind, value in cert.get("subjectAltName", ()):
        sans.setdefault(kind, []).append(value)
    common = next((v for k, v in names if k == "commonName"), None)
    return PeerIdentity(
        subject=subject,
        common_name=common,
        dns_names=tuple(sans.get("DNS", ())),
        uris=tuple(sans.get("URI", ())),
        ip_addresses=tuple(v.strip() for v in sans.get("IP Address", ())),
        emails=tuple(sans.get("email", ())),
    )


def _with_alpn(context: ssl.SSLContext) -> ssl.SSLContext:
    context.set_alpn_protocols([ALPN_H2])
    return context


class ServerTLS:
    """TLS for a server listener (see the module docstring). Give the key pair's files, or a
    ready server-side ``context`` (not reloaded)."""

    def __init__(
        self,
        cert_chain: PathLike | None = None,
        private_key: PathLike | None = None,
        *,
        client_ca: PathLike | None = None,
        require_client_cert: bool = False,
        reload_interval: float = 5.0,
        handshake_timeout: float = 10.0,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.reload_interval = reload_interval
        self.handshake_timeout = handshake_timeout
        self.reloads = 0  # key pairs picked up after the first
        self._checked = time.monotonic()
        self._client_ca = None if client_ca is None else Path(client_ca)
        self._require_client_cert = require_client_cert
        if context is not None:
            if cert_chain is not None or private_key is not None or client_ca is not None:
                raise ValueError("give either a context or the certificate files, not both")
            self._files: tuple[Path, ...] = ()
            self._stamps: tuple[tuple[int, int], ...] = ()
            self._current = self._listener = _with_alpn(context)
            return
        if cert_chain is None or private_key is None:
            raise ValueError("ServerTLS needs cert_chain and private_key (or context=)")
        self._files = (Path(cert_chain), Path(private_key))
        self._stamps = self._file_stamps()
        self._current = self._build()
        self._listener = self._current
        self._listener.sni_callback = self._on_client_hello

    @classmethod
    def from_context(cls, context: ssl.SSLContext, *, handshake_timeout: float = 10.0) -> ServerTLS:
        """A ready server-side context (ALPN ``h2`` is set on it; no reloading)."""
        return cls(context=context, handshake_timeout=handshake_timeout)

    @property
    def context(self) -> ssl.SSLContext:
        """The context a listener uses (it switches to the current key pair per connection)."""
        return self._listener

    def _build(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        cert, key = self._files
        context.load_cert_chain(cert, key)
        if self._client_ca is not None:
            context.load_verify_locations(self._client_ca)
            context.verify_mode = (
                ssl.CERT_REQUIRED if self._require_client_cert else ssl.CERT_OPTIONAL
            )
        elif self._require_client_cert:
            raise ValueError("require_client_cert needs client_ca (the CAs to verify them)")
        return _with_alpn(context)

    def _file_stamps(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for path in self._files:
            stat = path.stat()
            stamps.append((stat.st_mtime_ns, stat.st_size))
        return tuple(stamps)

    def reload(self) -> bool:
        """Re-read the key pair if its files changed; True if a new one is now used. A broken
        renewal (unreadable, key not matching) raises and the current pair stays."""
        if not self._files:
            return False
        stamps = self._file_stamps()
        if stamps == self._stamps:
            return False
        context = self._build()
        self._current = context
        self._stamps = stamps
        self.reloads += 1
        log.info("TLS key pair reloaded from %s", self._files[0])
        return True

    def _on_client_hello(
        self, conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        now = time.monotonic()
        if now - self._checked >= self.reload_interval:
            self._checked = now
            try:
                self.reload()
            except (OSError, ssl.SSLError, ValueError) as exc:
                log.error("TLS key pair reload failed (keeping the current one): %s", exc)
        if self._current is not self._listener:
            conn.context = self._current


class ChannelTLS:
    """TLS for a channel's connections (see the module docstring).

    ``root_certificates``: PEM file or PEM bytes of the CAs to trust (None: the system store).
    ``cert_chain`` / ``private_key``: the client certificate for mTLS (files).
    ``server_name``: the name to check the server's certificate against and send as SNI,
    instead of each endpoint's own (for tests, IP targets and unix sockets: without it a
    ``unix:``/``unix-abstract:`` target's certificate is checked against ``localhost``).
    ``context``: a ready client-side context instead of the above.
    """

    def __init__(
        self,
        root_certificates: PathLike | bytes | None = None,
        *,
        cert_chain: PathLike | None = None,
        private_key: PathLike | None = None,
        server_name: str | None = None,
        handshake_timeout: float = 20.0,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.server_name = server_name
        self.handshake_timeout = handshake_timeout
        if context is not None:
            if root_certificates is not None or cert_chain is not None:
                raise ValueError("give either a context or the certificates, not both")
            self.context = _with_alpn(context)
            return
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if isinstance(root_certificates, bytes):
            context.load_verify_locations(cadata=root_certificates.decode("ascii"))
        elif root_certificates is not None:
            context.load_verify_locations(root_certificates)
        if (cert_chain is None) != (private_key is None):
            raise ValueError("cert_chain and private_key go together (mTLS)")
        if cert_chain is not None and private_key is not None:
            context.load_cert_chain(cert_chain, private_key)
        self.context = _with_alpn(context)

    @classmethod
    def from_context(
        cls,
        context: ssl.SSLContext,
        *,
        server_name: str | None = None,
        handshake_timeout: float = 20.0,
    ) -> ChannelTLS:
        """A ready client-side context (ALPN ``h2`` is set on it)."""
        return cls(context=context, server_name=server_name, handshake_timeout=handshake_timeout)

    def name_for(self, host: str, attributes: Mapping[str, Any] | None = None) -> str:
        """The name to verify (and send as SNI) for an endpoint: ``server_name`` if set, else
        the endpoint's ``server_name`` attribute (a DNS target's name), else its host; a unix
        socket (``unix:/path``, ``unix-abstract:name``) has no host name: ``localhost``, the
        ``:authority`` gRPC sends for it (give ``server_name`` for a certificate without it)."""
        if self.server_name is not None:
            return self.server_name
        name = (attributes or {}).get("server_name")
        if name:
            return str(name)
        return UNIX_SERVER_NAME if is_unix_host(host) else host

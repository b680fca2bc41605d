"""What every command that dials a target shares: its TLS flags (-> ``ChannelTLS``), ``-H``
metadata, and opening the Channel with one-line errors for a bad target or a missing extra."""

from __future__ import annotations

import base64
import binascii
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from ..client import Channel
from ..metadata import MetadataValue
from ..tls import ChannelTLS
from .cli_errors import extra_hint, fail, one_line

__all__ = [
    "CacertOption",
    "CertOption",
    "HeaderOption",
    "InsecureOption",
    "KeyOption",
    "ServerNameOption",
    "TlsFlags",
    "TlsOption",
    "open_channel",
    "parse_metadata",
]

HeaderOption = Annotated[
    list[str] | None,
    typer.Option(
        "-H",
        "--header",
        help="Request metadata KEY:VALUE (repeatable); a key ending in -bin takes base64.",
        show_default=False,
        metavar="KEY:VALUE",
    ),
]
TlsOption = Annotated[
    bool,
    typer.Option("--tls", help="Dial over TLS (system trust store unless --cacert)."),
]
CacertOption = Annotated[
    Path | None,
    typer.Option(
        "--cacert", help="PEM file of the CAs to trust (implies --tls).", metavar="FILE",
        show_default=False,
    ),
]  # fmt: skip
CertOption = Annotated[
    Path | None,
    typer.Option(
        "--cert", help="Client certificate chain, PEM, for mTLS (with --key; implies --tls).",
        metavar="FILE", show_default=False,
    ),
]  # fmt: skip
KeyOption = Annotated[
    Path | None,
    typer.Option("--key", help="Private key of --cert, PEM.", metavar="FILE", show_default=False),
]
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure",
        help="TLS without checking the server's certificate (implies --tls; testing only).",
    ),
]
ServerNameOption = Annotated[
    str | None,
    typer.Option(
        "--server-name",
        help="Name to check the server's certificate against and send as SNI (implies --tls).",
        metavar="NAME",
        show_default=False,
    ),
]


@dataclass(frozen=True, slots=True)
class TlsFlags:
    """The TLS options of a command (``--tls``, ``--cacert``, ``--cert``/``--key``,
    ``--insecure``, ``--server-name``), turned into the channel's ``ChannelTLS``."""

    tls: bool = False
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure: bool = False
    server_name: str | None = None

    def channel_tls(self) -> ChannelTLS | None:
        """The ChannelTLS the flags describe, or None for plaintext."""
        wanted = self.tls or self.insecure or self.server_name is not None
        if not wanted and self.cacert is None and self.cert is None and self.key is None:
            return None
        if (self.cert is None) != (self.key is None):
            fail("--cert and --key go together")
        for flag, path in (("--cacert", self.cacert), ("--cert", self.cert), ("--key", self.key)):
            if path is not None and not path.is_file():
                fail(f"{flag} {path}: no such file")
        try:
            if self.insecure:
                context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                if self.cert is not None and self.key is not None:
                    context.load_cert_chain(self.cert, self.key)
                return ChannelTLS.from_context(context, server_name=self.server_name)
            return ChannelTLS(
                self.cacert, cert_chain=self.cert, private_key=self.key,
                server_name=self.server_name,
            )  # fmt: skip
        except (ssl.SSLError, OSError, ValueError) as exc:
            fail(f"TLS files: {one_line(exc)}")


def parse_metadata(headers: list[str] | None) -> list[tuple[str, MetadataValue]]:
    """``-H key:value`` items -> metadata; ``-bin`` values are base64 (padding optional)."""
    items: list[tuple[str, MetadataValue]] = []
    for header in headers or ():
        key, sep, value = header.partition(":")
        key, value = key.strip().lower(), value.strip()
        if not sep or not key:
            fail(f"-H {header!r}: expected KEY:VALUE")
        if key.endswith("-bin"):
            try:
                items.append(
                    (key, base64.b64decode(value + "=" * (-len(value) % 4), validate=True))
                )
            except binascii.Error:
                fail(f"-H {key}: a -bin value must be base64, not {value!r}")
        else:
            items.append((key, value))
    return items


def open_channel(target: str, tls: TlsFlags) -> Channel:
    """A Channel to ``target`` (any target it takes); bad targets and missing extras fail with
    one line."""
    channel_tls = tls.channel_tls()
    try:
        return Channel(target, tls=channel_tls)
    except ModuleNotFoundError as exc:
        fail(extra_hint(exc))
    except ValueError as exc:
        fail(f"target {target!r}: {one_line(exc)}")

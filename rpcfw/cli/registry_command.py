"""``rpcfw registry ls|watch``: what etcd says about registered services."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Annotated

import typer

from ..balancer.base import Endpoint
from ..etcd.api import EtcdError
from ..registry.instance import DEFAULT_PREFIX, Instance, parse_instance

__all__ = ["registry_app"]

registry_app = typer.Typer(help="Inspect service registrations in etcd.", no_args_is_help=True)

EtcdOption = Annotated[
    str, typer.Option("--etcd", help="etcd endpoints: host:port[,host:port...]", metavar="URL")
]
PrefixOption = Annotated[str, typer.Option(help="Key prefix the registry uses.")]

_HEADER = ("SERVICE", "INSTANCE", "ADDRESS", "WEIGHT", "ZONE", "VERSION")


def _endpoints(url: str) -> list[str]:
    return [
        e.strip().removeprefix("http://").removeprefix("etcd://")
        for e in url.split(",")
        if e.strip()
    ]


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in (_HEADER, *rows)) for i in range(len(_HEADER))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (_HEADER, *rows)
    ]
    return "\n".join(lines)


def _row(instance: Instance) -> tuple[str, ...]:
    address = f"{instance.address}:{instance.port}"
    return (
        instance.service,
        instance.instance_id,
        address,
        str(instance.weight),
        instance.zone,
        instance.version,
    )


def _endpoint_row(service: str, endpoint: Endpoint) -> tuple[str, ...]:
    a = endpoint.attributes
    return (
        service,
        str(a.get("instance_id", "")),
        str(endpoint),
        str(endpoint.weight),
        str(a.get("zone", "")),
        str(a.get("version", "")),
    )


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(3)


async def _ls(url: str, service: str | None, prefix: str) -> list[Instance]:
    from ..etcd import Etcd3PyClient

    client = Etcd3PyClient(_endpoints(url))
    try:
        keys = prefix.rstrip("/") + "/" + (f"{service}/" if service else "")
        snapshot = await client.get_prefix(keys)
    finally:
        await client.close()
    instances = []
    for item in snapshot.items:
        with contextlib.suppress(ValueError):
            instances.append(parse_instance(prefix, item.key, item.value))
    return instances


@registry_app.command("ls")
def ls(
    etcd: EtcdOption,
    service: Annotated[str | None, typer.Argument(help="Only this service.")] = None,
    prefix: PrefixOption = DEFAULT_PREFIX,
) -> None:
    """List registered instances (all services, or one)."""
    try:
        instances = asyncio.run(_ls(etcd, service, prefix))
    except EtcdError as exc:
        raise _fail(f"etcd at {etcd}: {exc}") from None
    if not instances:
        typer.echo(f"no instances registered{' for ' + service if service else ''}")
        return
    typer.echo(
        _table([_row(i) for i in sorted(instances, key=lambda i: (i.service, i.instance_id))])
    )


async def _watch(url: str, service: str, prefix: str, duration: float | None) -> None:
    from ..etcd import Etcd3PyClient
    from ..resolver.registry_resolver import RegistryResolver
    from ..resolver.target import parse_target

    client = Etcd3PyClient(_endpoints(url))
    try:
        await client.get_prefix(prefix.rstrip("/") + f"/{service}/")  # reachable at all?
    except BaseException:
        await client.close()
        raise

    def show(update: Sequence[Endpoint] | Exception) -> None:
        if isinstance(update, Exception):  # once per outage, not per retry
            typer.echo(f"-- etcd unreachable ({update}); showing the last known set", err=True)
            return
        typer.echo(f"-- {len(update)} instance(s) of {service}")
        typer.echo(_table([_endpoint_row(service, e) for e in update]) if update else "(none)")

    resolver = RegistryResolver(
        parse_target(f"etcd://{url}/{service}"), show, client, prefix=prefix, coalesce=0.05
    )
    resolver.start()
    try:
        if duration is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(duration)
    finally:
        await resolver.close()
        await client.close()


@registry_app.command("watch")
def watch(
    service: Annotated[str, typer.Argument(help="The service to follow, e.g. echo.v1.Echo.")],
    etcd: EtcdOption,
    prefix: PrefixOption = DEFAULT_PREFIX,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Print the instance table of SERVICE now and again whenever it changes (Ctrl-C ends).
    Exits 3 when etcd cannot be reached at the start; later outages are reported once each
    while the last known table stays valid."""
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_watch(etcd, service, prefix, duration))
    except EtcdError as exc:
        raise _fail(f"etcd at {etcd}: {exc}") from None
